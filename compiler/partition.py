"""The TTA pattern table and partitioning: which Relax ops run on the accelerator.

Patterns are tried in order (longest first). A pattern whose check fails leaves its ops on the
host, silently in TVM; `placement` makes that visible as a report of every op and where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard
from tvm.ir.expr import GenericConst
from tvm.relax.transform import FusionPattern, PatternCheckContext

CODEGEN = "tta"


def _activation(core):
    """core, optionally followed by a ReLU or a clip (ReLU6, hardtanh)."""
    return [("_relu", is_op("relax.nn.relu")(core)),
            ("_clip", is_op("relax.clip")(core, wildcard(), wildcard())), ("", core)]


def _with_bias_act(name: str, core):
    add = is_op("relax.add")(core, is_const()) | is_op("relax.add")(is_const(), core)
    return [(f"{name}_bias{suffix}", p) for suffix, p in _activation(add)] + \
        [(f"{name}{suffix}", p) for suffix, p in _activation(core)]


def _batch_one(expr) -> bool:
    shape = expr.ty.shape
    return shape is not None and int(shape[0]) == 1


def _check_conv2d(ctx: PatternCheckContext) -> bool:
    conv = ctx.annotated_expr["root"]
    a = conv.attrs
    return (a.data_layout == "NCHW" and a.kernel_layout == "OIHW"
            and a.out_layout == "NCHW" and _batch_one(conv.args[0])
            and conv.args[1].ty.dtype == "float32")


def _check_dense(ctx: PatternCheckContext) -> bool:
    mm = ctx.annotated_expr["root"]
    return (len(mm.args[0].ty.shape) == 2 and _batch_one(mm.args[0])
            and len(mm.args[1].ty.shape) == 2)


def _check_pool(ctx: PatternCheckContext) -> bool:
    pool = ctx.annotated_expr["root"]
    a = pool.attrs
    return (a.layout == "NCHW" and not a.ceil_mode and all(int(d) == 1 for d in a.dilation)
            and _batch_one(pool.args[0]))


def _check_mean(ctx: PatternCheckContext) -> bool:
    """Global average pooling: a mean over both spatial axes of an NCHW tensor."""
    mean = ctx.annotated_expr["root"]
    axes = sorted(int(a) % 4 for a in mean.attrs.axis) if mean.attrs.axis is not None else []
    return len(mean.args[0].ty.shape) == 4 and axes == [2, 3] and bool(mean.attrs.keepdims) \
        and _batch_one(mean.args[0])


def _check_add(ctx: PatternCheckContext) -> bool:
    """Element-wise add of two computed tensors of one shape (residual connections)."""
    add = ctx.annotated_expr["root"]
    a, b = add.args
    shapes = [tuple(int(d) for d in e.ty.shape) if e.ty.shape is not None else None
              for e in (a, b)]
    return (not isinstance(a, GenericConst) and not isinstance(b, GenericConst)
            and shapes[0] == shapes[1] and shapes[0] is not None and len(shapes[0]) == 4
            and shapes[0][0] == 1)


def pattern_table() -> list[FusionPattern]:
    conv = is_op("relax.nn.conv2d")(wildcard(), is_const())
    dense = is_op("relax.matmul")(wildcard(), is_const())
    flat_dense = is_op("relax.matmul")(is_op("relax.reshape")(wildcard(), wildcard()), is_const())
    table = []
    for kind, core, check in (("conv2d", conv, _check_conv2d), ("dense_flat", flat_dense, _check_dense),
                              ("dense", dense, _check_dense)):
        for name, pattern in _with_bias_act(kind, core):
            table.append(FusionPattern(f"{CODEGEN}.{name}", pattern, {"root": core}, check))
    for kind in ("max_pool2d", "avg_pool2d"):
        core = is_op(f"relax.nn.{kind}")(wildcard())
        table.append(FusionPattern(f"{CODEGEN}.{kind}", core, {"root": core}, _check_pool))
    core = is_op("relax.mean")(wildcard())
    table.append(FusionPattern(f"{CODEGEN}.global_avg_pool", core, {"root": core}, _check_mean))
    core = is_op("relax.add")(wildcard(), wildcard())
    for suffix, pattern in _activation(core):
        table.append(FusionPattern(f"{CODEGEN}.add{suffix}", pattern, {"root": core}, _check_add))
    return table


def partition_for_tta(mod: tvm.IRModule) -> tvm.IRModule:
    return relax.transform.FuseOpsByPattern(pattern_table(), bind_constants=True,
                                            annotate_codegen=True)(mod)


def offloaded_functions(mod: tvm.IRModule) -> dict[str, relax.Function]:
    return {gv.name_hint: f for gv, f in mod.functions.items()
            if isinstance(f, relax.Function) and f.attrs and f.attrs.get("Codegen") == CODEGEN}


@dataclass(frozen=True)
class Placement:
    op: str  # Relax op, or the offloaded function's ops joined by '+'
    where: str  # "tta" or "host"
    layer: str  # the offloaded function / layer name, or the host binding


def placement(mod: tvm.IRModule) -> list[Placement]:
    """Every op of `main` in order, with where it runs."""
    off = offloaded_functions(mod)
    rows: list[Placement] = []
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            if not isinstance(value, relax.Call):
                continue
            if isinstance(value.op, tvm.ir.GlobalVar) and value.op.name_hint in off:
                ops = _ops_in(off[value.op.name_hint])
                rows.append(Placement("+".join(ops), CODEGEN, value.op.name_hint))
            elif isinstance(value.op, tvm.ir.Op):
                rows.append(Placement(value.op.name.removeprefix("relax."), "host",
                                      binding.var.name))
    return rows


def _ops_in(func: relax.Function) -> list[str]:
    ops: list[str] = []

    def visit(e):
        if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op):
            ops.append(e.op.name.removeprefix("relax."))

    relax.analysis.post_order_visit(func, visit)
    return ops
