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
    return relax.transform.FuseOpsByPattern(pattern_table(), bind_constants=True,
                                            annotate_codegen=True)(mod)


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
