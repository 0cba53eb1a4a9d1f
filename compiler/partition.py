"""Partitioning: which Relax ops run on the accelerator, by the layer kinds' pattern table.

Patterns are tried in order (longest first). A pattern whose check fails leaves its ops on the
host, silently in TVM; `placement` makes that visible as a report of every op and where it runs.
The composite name of each offloaded function (`tta.conv2d_bias_relu`, ...) names its kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax

from compiler.kinds import CODEGEN, pattern_table


def partition_for_tta(mod: tvm.IRModule) -> tvm.IRModule:
    """Offload what the pattern table matches; every call site gets a function of its own."""
    return unshare_calls(relax.transform.FuseOpsByPattern(
        pattern_table(mod), bind_constants=True, annotate_codegen=True)(mod))


def unshare_calls(mod: tvm.IRModule) -> tvm.IRModule:
    """One offloaded function per call site. FuseOpsByPattern gives structurally equal regions
    (two adds of one shape, two equal concatenations) one shared function; a layer is a call
    site, not a function, so each repeat gets a copy under a name of its own."""
    off = {gv.name_hint: f for gv, f in mod.functions.items()
           if isinstance(f, relax.Function) and f.attrs and "Codegen" in f.attrs}
    builder = relax.BlockBuilder(mod)  # its GlobalVars carry the function's type
    taken = {gv.name_hint for gv in mod.functions}
    seen: set[str] = set()
    blocks, changed = [], False
    for block in mod["main"].body.blocks:
        bindings = []
        for binding in block.bindings:
            value = binding.value
            name = value.op.name_hint if isinstance(value, relax.Call) and \
                isinstance(value.op, tvm.ir.GlobalVar) else None
            if name in off and name in seen:
                copy = next(f"{name}_{k}" for k in range(1, len(taken) + 2)
                            if f"{name}_{k}" not in taken)
                taken.add(copy)
                gv = builder.add_func(off[name].with_attr("global_symbol", copy), copy)
                value = relax.Call(gv, value.args, value.attrs, value.ty_args)
                binding = relax.VarBinding(binding.var, value)
                changed = True
            elif name in off:
                seen.add(name)
            bindings.append(binding)
        blocks.append(relax.DataflowBlock(bindings) if isinstance(block, relax.DataflowBlock)
                      else relax.BindingBlock(bindings))
    if not changed:
        return mod
    mod, main = builder.get(), mod["main"]
    mod["main"] = relax.Function(main.params, relax.SeqExpr(blocks, main.body.body),
                                 main.ret_ty, main.is_pure, main.attrs, main.span)
    return mod


def composite_name(func: relax.Function) -> str:
    """The composite pattern name inside an offloaded function."""
    found: list[str] = []
    relax.analysis.post_order_visit(
        func, lambda e: found.append(str(e.attrs["Composite"]))
        if isinstance(e, relax.Function) and e.attrs and "Composite" in e.attrs else None)
    return found[0] if found else ""


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
            elif isinstance(value.op, tvm.ir.GlobalVar):  # a host kernel (compiler.hostkernels)
                ops = _ops_in(mod[value.op])
                rows.append(Placement("+".join(ops) + " (integer kernel)", "host",
                                      binding.var.name))
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
