"""Offloaded Relax functions -> layer IR: read the op attributes and constants, then quantize.

Quantization scales come from a `QuantSpec` keyed by the torch module path of each layer; an
offloaded function is matched to its module by its weight tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import tvm
from tvm import relax
from tvm.ir.expr import GenericConst

from compiler.errors import CompileError
from compiler.intsem import Requant, quantize_bias, quantize_weight, weight_scale
from compiler.layer_ir import Conv2d, Dense, Layer


@dataclass(frozen=True)
class LayerQuant:
    """Scales of one layer: its input's, and its output's (None: keep int32 accumulators)."""

    in_scale: float
    out_scale: float | None


QuantSpec = dict[str, LayerQuant]


@dataclass(frozen=True, eq=False)
class FloatLayer:
    kind: str  # "conv2d" | "dense"
    weight: np.ndarray  # conv: OIHW; dense: [O, K]
    bias: np.ndarray | None
    relu: bool
    in_shape: tuple[int, ...]  # without the batch axis
    out_shape: tuple[int, ...]
    strides: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)


def read_function(func: relax.Function) -> FloatLayer:
    """The float layer inside one offloaded function (conv2d|matmul [+ bias] [+ relu])."""
    calls: list[relax.Call] = []
    relax.analysis.post_order_visit(
        func, lambda e: calls.append(e) if isinstance(e, relax.Call)
        and isinstance(e.op, tvm.ir.Op) else None)
    by_op = {c.op.name: c for c in calls}
    core = by_op["relax.nn.conv2d" if "relax.nn.conv2d" in by_op else "relax.matmul"]
    shape = lambda e: tuple(int(d) for d in e.ty.shape)[1:]  # noqa: E731
    bias = None
    if "relax.add" in by_op:
        const = [a for a in by_op["relax.add"].args if isinstance(a, GenericConst)][0]
        bias = const.value.numpy().reshape(-1)
    out = calls[-1]
    weight = core.args[1].value.numpy()
    if core.op.name == "relax.nn.conv2d":
        a = core.attrs
        return FloatLayer("conv2d", weight, bias, "relax.nn.relu" in by_op, shape(core.args[0]),
                          shape(out), tuple(int(s) for s in a.strides),
                          tuple(int(p) for p in a.padding[:2]),
                          tuple(int(d) for d in a.dilation))
    return FloatLayer("dense", weight.T, bias, "relax.nn.relu" in by_op, shape(core.args[0]),
                      shape(out))


def module_weights(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {name: m.weight.detach().cpu().numpy() for name, m in model.named_modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}


def match_module(layer: FloatLayer, weights: dict[str, np.ndarray], func_name: str) -> str:
    names = [n for n, w in weights.items()
             if w.shape == layer.weight.shape and np.array_equal(w, layer.weight)]
    if len(names) != 1:
        what = "no" if not names else f"{len(names)} ({', '.join(names)})"
        raise CompileError(f"offloaded {layer.kind} {func_name} with weight {layer.weight.shape} "
                           f"matches {what} nn.Conv2d/nn.Linear modules; its quantization "
                           f"scales are looked up by module")
    return names[0]


def quantize_layer(name: str, f: FloatLayer, q: LayerQuant) -> Layer:
    ws = weight_scale(f.weight)
    wq = quantize_weight(f.weight, ws)
    bias = f.bias if f.bias is not None else np.zeros(f.weight.shape[0])
    bq = quantize_bias(bias, q.in_scale, ws)
    if q.out_scale is None:
        if f.relu:
            raise CompileError(f"layer {name}: a ReLU output needs an output scale to requantize "
                               f"to; give one in the quantization spec")
        requant, out_scale = None, q.in_scale * ws
    else:
        requant = Requant.from_scale(q.in_scale * ws / q.out_scale, f.relu)
        out_scale = q.out_scale
    if f.kind == "dense":
        return Dense(name, f.in_shape[0], f.out_shape[0], wq, bq, requant, q.in_scale, out_scale)
    return Conv2d(name, f.in_shape, f.out_shape, wq, bq, f.strides, f.padding, f.dilation,
                  requant, q.in_scale, out_scale)
