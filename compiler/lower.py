"""Offloaded Relax functions -> layer IR.

1. `read_function` reads the float layer inside each offloaded function (op attributes and
   constants); `float_forward` runs it in torch (for calibration).
2. `assign_formats` gives every tensor between layers a quantization (bits, scale): a layer's
   input takes the spec's bits and a calibrated (or given) scale; a layer writes its output in
   the format its only consumer reads, so nothing is requantized twice.
3. `quantize` turns a float layer and its formats into the integers of the layer IR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
import tvm
from tvm import relax
from tvm.ir.expr import GenericConst

from compiler import intsem
from compiler.errors import CompileError
from compiler.intsem import QMAX, QMIN, Requant
from compiler.layer_ir import Add, Conv2d, Dense, Layer, Output, Pool
from compiler.quantspec import QuantSpec


@dataclass(frozen=True, eq=False)
class FloatLayer:
    kind: str  # conv2d | dense | max_pool | avg_pool | add
    func: str  # the offloaded Relax function
    in_shapes: tuple[tuple[int, ...], ...]  # without the batch axis
    out_shape: tuple[int, ...]
    weight: np.ndarray | None = None  # conv: OIHW; dense: [O, K]
    bias: np.ndarray | None = None
    act: tuple | None = None  # None | ("relu",) | ("clip", lo, hi)
    strides: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)


def _shape(e) -> tuple[int, ...]:
    return tuple(int(d) for d in e.ty.shape)[1:]


def read_function(name: str, func: relax.Function) -> FloatLayer:
    """The float layer inside one offloaded function."""
    calls: list[relax.Call] = []
    relax.analysis.post_order_visit(
        func, lambda e: calls.append(e) if isinstance(e, relax.Call)
        and isinstance(e.op, tvm.ir.Op) else None)
    by_op = {c.op.name.removeprefix("relax."): c for c in calls}
    out = _shape(calls[-1])
    act = None
    if "nn.relu" in by_op:
        act = ("relu",)
    elif "clip" in by_op:
        lo, hi = (float(a.value) for a in by_op["clip"].args[1:3])
        act = ("clip", lo, hi)
    if "nn.conv2d" in by_op or "matmul" in by_op:
        bias = None
        adds = [c for c in calls if c.op.name == "relax.add"]
        if adds:
            const = [a for a in adds[0].args if isinstance(a, GenericConst)][0]
            bias = const.value.numpy().reshape(-1).astype(np.float64)
        if "nn.conv2d" in by_op:
            core = by_op["nn.conv2d"]
            a = core.attrs
            pad = tuple(int(p) for p in a.padding)
            pad = pad * 2 if len(pad) == 2 else pad
            return FloatLayer("conv2d", name, (_shape(core.args[0]),), out,
                              core.args[1].value.numpy().astype(np.float64), bias, act,
                              tuple(int(s) for s in a.strides), pad,
                              tuple(int(d) for d in a.dilation), int(a.groups))
        core = by_op["matmul"]
        src = by_op["reshape"].args[0] if "reshape" in by_op else core.args[0]
        return FloatLayer("dense", name, (_shape(src),), out,
                          core.args[1].value.numpy().T.astype(np.float64), bias, act)
    if "nn.max_pool2d" in by_op or "nn.avg_pool2d" in by_op:
        pool = by_op["nn.max_pool2d" if "nn.max_pool2d" in by_op else "nn.avg_pool2d"]
        a = pool.attrs
        return FloatLayer("max_pool" if "nn.max_pool2d" in by_op else "avg_pool", name,
                          (_shape(pool.args[0]),), out, strides=tuple(int(s) for s in a.strides),
                          padding=tuple(int(p) for p in a.padding),
                          kernel=tuple(int(k) for k in a.pool_size))
    if "mean" in by_op:  # global average pooling
        shape = _shape(by_op["mean"].args[0])
        return FloatLayer("avg_pool", name, (shape,), out, kernel=shape[1:], strides=shape[1:])
    add = by_op["add"]
    return FloatLayer("add", name, (_shape(add.args[0]), _shape(add.args[1])), out, act=act)


def float_forward(f: FloatLayer, *xs: np.ndarray) -> np.ndarray:
    """The float layer in torch, batch 1 (calibration runs this in place of the accelerator)."""
    t = [torch.from_numpy(np.asarray(x, np.float32)).reshape(1, *s)
         for x, s in zip(xs, f.in_shapes)]
    with torch.no_grad():
        if f.kind == "conv2d":
            pt, pl, pb, pr = f.padding
            x = F.pad(t[0], (pl, pr, pt, pb))
            y = F.conv2d(x, torch.from_numpy(f.weight.astype(np.float32)),
                         None if f.bias is None else torch.from_numpy(f.bias.astype(np.float32)),
                         f.strides, 0, f.dilation, f.groups)
        elif f.kind == "dense":
            y = F.linear(t[0].reshape(1, -1), torch.from_numpy(f.weight.astype(np.float32)),
                         None if f.bias is None else torch.from_numpy(f.bias.astype(np.float32)))
        elif f.kind == "max_pool":
            pt, pl, pb, pr = f.padding
            y = F.max_pool2d(F.pad(t[0], (pl, pr, pt, pb), value=-np.inf), f.kernel, f.strides)
        elif f.kind == "avg_pool":
            pt, pl, pb, pr = f.padding
            y = F.avg_pool2d(F.pad(t[0], (pl, pr, pt, pb)), f.kernel, f.strides)
        else:
            y = t[0] + t[1]
        if f.act and f.act[0] == "relu":
            y = F.relu(y)
        elif f.act:
            y = torch.clamp(y, f.act[1], f.act[2])
    return y.numpy().reshape(f.out_shape)


def module_weights(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Module path -> weight of every conv / linear layer (by parameter name, so modules
    rebuilt from an ExportedProgram match too)."""
    return {name.removesuffix(".weight"): p.detach().cpu().numpy()
            for name, p in model.named_parameters()
            if name.endswith(".weight") and p.dim() in (2, 4)}


def match_module(layer: FloatLayer, weights: dict[str, np.ndarray]) -> str:
    w = layer.weight.astype(np.float32)
    names = [n for n, mw in weights.items() if mw.shape == w.shape and np.array_equal(mw, w)]
    if len(names) != 1:
        what = "no" if not names else f"{len(names)} ({', '.join(names)})"
        raise CompileError(f"offloaded {layer.kind} {layer.func} with weight "
                           f"{layer.weight.shape} matches {what} nn.Conv2d/nn.Linear modules; "
                           f"its quantization is looked up by module path")
    return names[0]


# --- formats -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorQuant:
    bits: int  # 8, 2, 1; 32: int32 accumulators
    scale: float | np.ndarray


@dataclass
class Stats:
    """Calibration statistics of one tensor: max and mean of |x| over the samples."""

    amax: float = 0.0
    abs_sum: float = 0.0
    count: int = 0

    def add(self, x: np.ndarray) -> None:
        a = np.abs(np.asarray(x, np.float64))
        self.amax = max(self.amax, float(a.max(initial=0.0)))
        self.abs_sum += float(a.sum())
        self.count += a.size

    @property
    def mean(self) -> float:
        return self.abs_sum / self.count if self.count else 0.0


@dataclass
class LayerStats:
    inputs: list[Stats] = field(default_factory=list)
    output: Stats = field(default_factory=Stats)


@dataclass(frozen=True)
class Node:
    """One offloaded layer in the dataflow: its name and who reads its output."""

    float_layer: FloatLayer
    name: str
    bits: tuple[int, int]  # (weights, activations) of conv/dense; (8, 8) otherwise
    consumers: tuple[tuple[str, int], ...]  # (layer name, input index) among offloaded layers
    host_use: bool  # read by a host op or returned by the network


def assign_formats(nodes: list[Node], stats: dict[str, LayerStats],
                   spec: QuantSpec) -> dict[str, tuple[list[TensorQuant], TensorQuant]]:
    """(input formats, output format) per layer; see the module docstring."""
    formats: dict[str, tuple[list[TensorQuant], TensorQuant]] = {}
    for node in reversed(nodes):  # consumers first
        f, st = node.float_layer, stats[node.name]
        own = TensorQuant(8, intsem.act_scale(st.output.amax, st.output.mean, 8))
        if len(node.consumers) == 1 and not node.host_use:
            consumer, index = node.consumers[0]
            out = formats[consumer][0][index]
            if out.bits < 8 and (f.act or f.kind not in ("conv2d", "dense")):
                out = own  # a ReLU / clip, pooling or add feeding 1-2 bit inputs: int8, the
                # consumer's quantizer runs on the host between the layer runs
        elif f.kind in ("conv2d", "dense") and not node.consumers and not f.act:
            out = TensorQuant(32, 0.0)  # exact accumulators to the host
        else:
            out = own
        ins = []
        for i, s in enumerate(st.inputs):
            bits = node.bits[1] if f.kind in ("conv2d", "dense") else 8
            given = spec.act_scales.get(node.name) if i == 0 else None
            scale = given if given is not None else intsem.act_scale(s.amax, s.mean, bits)
            if f.kind == "max_pool":  # max passes values: same scale in and out
                scale = out.scale
            ins.append(TensorQuant(bits, scale))
        formats[node.name] = (ins, out)
    return formats


# --- quantization --------------------------------------------------------------------------

def _clip_bounds(f: FloatLayer, scale: float) -> tuple[int, int]:
    if not f.act:
        return QMIN, QMAX
    if f.act[0] == "relu":
        return 0, QMAX
    lo = int(np.clip(np.round(f.act[1] / scale), QMIN, QMAX))
    hi = int(np.clip(np.round(f.act[2] / scale), QMIN, QMAX))
    return lo, hi


def _output(f: FloatLayer, out: TensorQuant, acc_scale: np.ndarray, o: int) -> Output:
    """How accumulators in units of acc_scale[o] become the output format."""
    if out.bits == 32:
        if f.act:
            raise CompileError(f"{f.func}: a ReLU/clip output read by the host needs an output "
                               f"scale; it cannot stay int32")
        return Output("int32", np.asarray(acc_scale, np.float64))
    s_out = float(out.scale)
    scale = np.full(o, s_out)
    if out.bits == 8:
        lo, hi = _clip_bounds(f, s_out)
        rq = Requant.from_scale(np.asarray(acc_scale) / s_out)
        return Output("int8", scale, requant=Requant(rq.multiplier, rq.shift, lo, hi))
    if out.bits == 2:
        return Output("ternary", scale, thresholds=intsem.ternary_thresholds(s_out, acc_scale))
    return Output("binary", scale)


def quantize(node: Node, ins: list[TensorQuant], out: TensorQuant) -> Layer:
    f, name = node.float_layer, node.name
    try:
        return _quantize(f, name, node.bits[0], ins, out)
    except CompileError as exc:
        raise CompileError(f"layer {name}: {exc}") from None


def _quantize(f: FloatLayer, name: str, w_bits: int, ins: list[TensorQuant],
              out: TensorQuant) -> Layer:
    if f.kind in ("conv2d", "dense"):
        s_in, a_bits = float(ins[0].scale), ins[0].bits
        wq, ws = intsem.quantize_weights(f.weight, w_bits)
        bias = f.bias if f.bias is not None else np.zeros(f.weight.shape[0])
        bq = intsem.quantize_bias(bias, s_in, ws)
        o = f.weight.shape[0]
        output = _output(f, out, s_in * ws, o)
        if f.kind == "dense":
            return Dense(name, f.in_shapes[0], o, wq, bq, w_bits, a_bits, s_in, output, f.func,
                         ws)
        return Conv2d(name, f.in_shapes[0], f.out_shape, wq, bq, f.strides, f.padding,
                      f.dilation, f.groups, w_bits, a_bits, s_in, output, f.func, ws)
    c = f.out_shape[0]
    if f.kind == "max_pool":
        return Pool(name, "max", f.in_shapes[0], f.out_shape, f.kernel, f.strides, f.padding,
                    float(ins[0].scale), Output("int8", np.full(c, float(out.scale))), f.func)
    if f.kind == "avg_pool":
        n = f.kernel[0] * f.kernel[1]
        s_in, s_out = float(ins[0].scale), float(out.scale)
        rq = Requant.from_scale(s_in / (n * s_out))
        return Pool(name, "avg", f.in_shapes[0], f.out_shape, f.kernel, f.strides, f.padding,
                    s_in, Output("int8", np.full(c, s_out), requant=rq), f.func)
    # add: acc = a * ka + b * kb in units of s_min / 2**k, then requantized
    sa, sb, s_out = float(ins[0].scale), float(ins[1].scale), float(out.scale)
    s_min = min(sa, sb)
    k = 10
    ka, kb = round(sa / s_min * 2**k), round(sb / s_min * 2**k)
    while max(ka, kb) >= 2**11 and k > 0:
        k -= 1
        ka, kb = round(sa / s_min * 2**k), round(sb / s_min * 2**k)
    lo, hi = _clip_bounds(f, s_out)
    rq = Requant.from_scale(s_min / 2**k / s_out)
    return Add(name, f.out_shape, ka, kb, sa, sb,
               Output("int8", np.full(c, s_out), requant=Requant(rq.multiplier, rq.shift, lo, hi)),
               f.func)
