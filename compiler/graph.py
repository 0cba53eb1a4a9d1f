"""Where each accelerator layer's inputs come from in the partitioned network: another layer's
output (through ops that only reshape), the network's input (through any host ops), or a host op
that computes on layer outputs. Tools that run the layers without the host graph (the batched
fault-injection engine) wire the layers with it, and refuse the networks they cannot wire.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax

# Host ops that keep values and their CHW order: a layer reading one reads its producer's output.
PASS_THROUGH = frozenset({"relax.reshape", "relax.flatten", "relax.squeeze",
                          "relax.expand_dims"})


@dataclass(frozen=True)
class Source:
    kind: str  # "layer": another layer's output; "input": the network input; "host": computed
    name: str = ""  # the layer, or the host op that computes on layer outputs


def layer_sources(mod: tvm.IRModule, func_layer: dict[str, str]
                  ) -> tuple[dict[str, tuple[Source, ...]], Source]:
    """Per layer (by name), the source of each input; and the source of the network output.
    (Variables are told apart by identity: Relax names need not be unique.)"""
    origin: dict[relax.Var, Source] = {p: Source("input") for p in mod["main"].params}

    def source(expr) -> Source:
        if isinstance(expr, relax.Var):
            return origin.get(expr, Source("input"))
        if isinstance(expr, relax.TupleGetItem):
            return source(expr.tuple_value)
        if isinstance(expr, relax.Tuple):
            return source(expr.fields[0]) if len(expr.fields) == 1 else \
                _combined([source(f) for f in expr.fields], "relax.Tuple")
        if isinstance(expr, relax.Call):
            op = expr.op.name if isinstance(expr.op, tvm.ir.Op) else str(expr.op)
            if op in PASS_THROUGH:
                return source(expr.args[0])
            return _combined([source(a) for a in expr.args], op)
        return Source("input")  # constants

    inputs: dict[str, tuple[Source, ...]] = {}
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar) \
                    and value.op.name_hint in func_layer:
                name = func_layer[value.op.name_hint]
                inputs[name] = tuple(source(a) for a in value.args)
                origin[binding.var] = Source("layer", name)
            else:
                origin[binding.var] = source(value)
    return inputs, source(mod["main"].body.body)


def _combined(sources: list[Source], op: str) -> Source:
    """A host op: the network input's preprocessing if no layer output reaches it."""
    if all(s.kind == "input" for s in sources):
        return Source("input")
    return Source("host", op)
