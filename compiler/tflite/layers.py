"""Layers of a quantized (QDQ) graph, read into the layer IR with TFLite's integer semantics.

The model carries its quantization: weights, biases, scales and zero points are read from the
constants, never chosen again. What TFLite's reference kernels compute becomes this project's
layer IR (`compiler.intsem`, TFLite rounding):
- CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: the input zero point folded into the bias
  (-zp * sum(w) per output channel) and held by the padding; per-channel multiplier and shift
  from s_in * s_w / s_out (QuantizeMultiplier in double, as TFLite); output zero point and the
  fused activation's bounds in the requantization.
- ADD: each input rescaled as TFLite does ((q - zp) << 20, its own multiplier), the sum
  requantized to the output (left shift 20, twice the larger input scale).
- AVERAGE_POOL_2D: the sum times ceil(2**31 / n) with TFLite's rounding, which equals TFLite's
  division rounded half away from zero (checked over every sum the window can hold).
- MAX_POOL_2D: values pass, clipped to the fused activation's bounds.
"""

from __future__ import annotations

import math

import numpy as np
from tvm import relax

from compiler.errors import CompileError
from compiler.intsem import QMAX, QMIN, Requant, srdhm, tflite_multiplier
from compiler.kinds.base import const_value, is_constant, op_calls
from compiler.layer_ir import Add, Conv2d, Dense, Layer, Output, Pool, Rescale

ADD_LEFT_SHIFT = 20  # TFLite's int8 ADD


def read_layer(name: str, func: relax.Function, composite: str, label: str,
               scale: float = 1.0) -> Layer:
    """The layer IR of one offloaded function (composite `tta.q<kind>`); `label` names it in
    errors; `scale`: its input tensor's (pooling passes values, so its function holds none)."""
    calls = [_Call(c, _bindings(func)) for c in op_calls(func)]
    if composite in ("tta.qavgpool", "tta.qmaxpool"):
        return (_avgpool if composite == "tta.qavgpool" else _maxpool)(name, calls, label,
                                                                        scale)
    reader = {"tta.qconv2d": _conv, "tta.qdense": _dense, "tta.qadd": _add}.get(composite)
    if reader is None:
        raise CompileError(f"{label}: no reader for composite {composite!r}")
    return reader(name, calls, label)


def _bindings(func: relax.Function) -> dict:
    found = {}

    def visit(e):
        if isinstance(e, relax.SeqExpr):
            for block in e.blocks:
                for b in block.bindings:
                    found[b.var] = b.value
    relax.analysis.post_order_visit(func, visit)
    return found


class _Call:
    """A call whose arguments are seen through the function's bindings (a dataflow variable
    reads as the call it binds)."""

    def __init__(self, call: relax.Call, bound: dict):
        self.call, self.bound = call, bound
        self.op, self.attrs, self.ty = call.op, call.attrs, call.ty

    @property
    def args(self) -> list:
        out = []
        for a in self.call.args:
            while isinstance(a, relax.Var) and a in self.bound:
                a = self.bound[a]
            out.append(_Call(a, self.bound) if isinstance(a, relax.Call) else a)
        return out


def _ops(calls, op: str) -> list[relax.Call]:
    return [c for c in calls if c.op.name == f"relax.{op}"]


def _scalar(e, label: str) -> float:
    v = const_value(e).reshape(-1)
    if v.size != 1:
        raise CompileError(f"{label}: a per-axis activation quantization ({v.size} scales); "
                           f"TFLite activations have one scale and zero point")
    return v[0]


def _dq_params(dq: relax.Call, label: str) -> tuple[float, int]:
    """(scale, zero point) of an activation dequantize / quantize."""
    return float(np.float32(_scalar(dq.args[1], label))), int(_scalar(dq.args[2], label))


def _out_params(calls, label: str) -> tuple[float, int, int, int]:
    """(scale, zero point, lo, hi) of the layer's output quantize and its clip."""
    q = _ops(calls, "quantize")[-1]
    s_out, zp = _dq_params(q, label)
    lo, hi = QMIN, QMAX
    for clip in _ops(calls, "clip"):
        lo = max(lo, int(math.ceil(float(clip.args[1].value))))
        hi = min(hi, int(math.floor(float(clip.args[2].value))))
    return s_out, zp, lo, hi


def _weights(dq: relax.Call, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(int8 constant, per-channel or per-tensor float32 scales) of a weight dequantize."""
    w = dq.args[0]
    while not is_constant(w):  # a permute_dims of the constant
        w = w.args[0]
    q = const_value(w)
    if q.dtype != np.int8:
        raise CompileError(f"{label}: weights of type {q.dtype}; the accelerator takes int8")
    zp = const_value(dq.args[2]).reshape(-1)
    if np.any(zp != 0):
        raise CompileError(f"{label}: weights with a zero point ({int(zp[zp != 0][0])}); "
                           f"TFLite's int8 weights are symmetric")
    return q, const_value(dq.args[1]).astype(np.float32).reshape(-1)


def _bias(calls, label: str, channels: int) -> np.ndarray:
    for add in _ops(calls, "add"):
        for a in add.args:
            if isinstance(a, _Call) and a.op.name == "relax.dequantize" \
                    and is_constant(a.args[0]):
                b = const_value(a.args[0]).reshape(-1)
                if b.dtype != np.int32:
                    raise CompileError(f"{label}: bias of type {b.dtype}; TFLite's is int32")
                return b.astype(np.int64)
    return np.zeros(channels, np.int64)


def _requant(s_in: float, s_w: np.ndarray, s_out: float, channels: int, zp: int, lo: int,
             hi: int, rounding: str = "tflite") -> Requant:
    """Per-channel multipliers as TFLite computes them: double(s_in) * double(s_w) /
    double(s_out), then QuantizeMultiplier."""
    s_w = np.broadcast_to(np.asarray(s_w, np.float32), (channels,))
    pairs = [tflite_multiplier(float(s_in) * float(s) / float(s_out)) for s in s_w]
    return Requant(np.array([m for m, _ in pairs], np.int64),
                   np.array([s for _, s in pairs], np.int64), lo, hi, zp, rounding)


def _folded(bias: np.ndarray, weight: np.ndarray, zp_in: int) -> np.ndarray:
    """The bias with the input zero point folded in: TFLite sums (q - zp) * w + b, this
    project q * w + (b - zp * sum(w)); both wrap at 32 bits alike."""
    folded = bias - zp_in * weight.reshape(len(weight), -1).astype(np.int64).sum(axis=1)
    return ((folded + 2**31) % 2**32 - 2**31).astype(np.int32)


def _chw(shape) -> tuple[int, int, int]:
    n, h, w, c = (int(d) for d in shape)
    return c, h, w


def _conv(name: str, calls, label: str) -> Conv2d:
    conv = _ops(calls, "nn.conv2d")[0]
    a = conv.attrs
    if str(a.data_layout) != "NHWC" or str(a.out_layout) != "NHWC":
        raise CompileError(f"{label}: layout {a.data_layout}; TFLite's is NHWC")
    x_dq = conv.args[0]
    s_in, zp_in = _dq_params(x_dq, label)
    w_side = conv.args[1]
    w_dq = w_side if w_side.op.name == "relax.dequantize" else w_side.args[0]
    q, s_w = _weights(w_dq, label)
    kshape = [int(d) for d in w_side.ty.shape]
    q = q.reshape(kshape)
    layout = str(a.kernel_layout)
    if layout == "HWIO":
        weight = q.transpose(3, 2, 0, 1)
    elif layout == "HWOI":
        weight = q.transpose(2, 3, 0, 1)
    else:
        raise CompileError(f"{label}: kernel layout {layout}")
    in_shape = _chw(x_dq.args[0].ty.shape)
    out_shape = _chw(conv.ty.shape)
    o = out_shape[0]
    s_out, zp_out, lo, hi = _out_params(calls, label)
    rq = _requant(s_in, s_w, s_out, o, zp_out, lo, hi)
    bias = _folded(_bias(calls, label, o), weight, zp_in)
    return Conv2d(name, in_shape, out_shape, np.ascontiguousarray(weight), bias,
                  tuple(int(s) for s in a.strides), tuple(int(p) for p in a.padding),
                  tuple(int(d) for d in a.dilation), int(a.groups), 8, 8, s_in,
                  Output("int8", np.full(o, s_out), requant=rq), label,
                  np.broadcast_to(s_w.astype(np.float64), (o,)).copy(), zp_in)


def _dense(name: str, calls, label: str) -> Dense:
    mm = _ops(calls, "matmul")[0]
    x_dq, w_dq = mm.args
    s_in, zp_in = _dq_params(x_dq, label)
    q, s_w = _weights(w_dq, label)
    permuted = isinstance(w_dq.args[0], _Call) and w_dq.args[0].op.name == "relax.permute_dims"
    weight = q if permuted else q.T  # TFLite's FULLY_CONNECTED weights are [O, K]
    o, k = weight.shape
    src = x_dq.args[0]
    in_shape: tuple[int, ...] = (k,)
    if isinstance(src, _Call) and src.op.name == "relax.reshape":
        dims = [int(d) for d in src.args[0].ty.shape]
        if len(dims) == 4:  # flattened from NHWC: the layer reads C, H, W in that order
            c, h, w = _chw(dims)
            weight = weight.reshape(o, h, w, c).transpose(0, 3, 1, 2).reshape(o, k)
            in_shape = (c, h, w)
    s_out, zp_out, lo, hi = _out_params(calls, label)
    # LiteRT's FULLY_CONNECTED reference rounds once (measured against it: gemmlowp's two
    # roundings differ on about 1 value in 30)
    rq = _requant(s_in, s_w, s_out, o, zp_out, lo, hi, "single")
    bias = _folded(_bias(calls, label, o), weight, zp_in)
    return Dense(name, in_shape, o, np.ascontiguousarray(weight), bias, 8, 8, s_in,
                 Output("int8", np.full(o, s_out), requant=rq), label,
                 np.broadcast_to(s_w.astype(np.float64), (o,)).copy(), zp_in)


def _add(name: str, calls, label: str) -> Add:
    add = _ops(calls, "add")[0]
    (s1, zp1), (s2, zp2) = (_dq_params(a, label) for a in add.args)
    s_out, zp_out, lo, hi = _out_params(calls, label)
    if _ops(calls, "nn.relu"):
        lo = max(lo, zp_out)
    twice = 2 * max(np.float32(s1), np.float32(s2))  # in float, as TFLite computes it
    rescale = tuple(Rescale(-zp, *tflite_multiplier(float(s) / float(twice)), ADD_LEFT_SHIFT)
                    for s, zp in ((s1, zp1), (s2, zp2)))
    m, shift = tflite_multiplier(float(twice) / float(np.float32((1 << ADD_LEFT_SHIFT)
                                                                 * np.float32(s_out))))
    shape = _chw(add.ty.shape) if len(add.ty.shape) == 4 else (int(add.ty.shape[-1]), 1, 1)
    rq = Requant(np.array([m], np.int64), np.array([shift], np.int64), lo, hi, zp_out, "tflite")
    return Add(name, shape, 1, 1, s1, s2, Output("int8", np.full(shape[0], s_out), requant=rq),
               label, rescale)


def average_multiplier(n: int) -> int:
    """A Q31 multiplier m with srdhm(v, m) == TFLite's rounded division v / n for every sum
    of n int8 values: ceil(2**31 / n) makes ties round away from zero like TFLite's
    (v +- n/2) / n; checked exhaustively."""
    v = np.arange(QMIN * n, QMAX * n + 1, dtype=np.int64)
    half = n // 2
    want = np.where(v > 0, (v + half) // n, -((-(v - half)) // n))
    for m in (-(-2**31 // n), -(-2**31 // n) + 1, 2**31 // n, 2**31 - 1):  # n = 1: the last
        if m < 2**31 and np.array_equal(srdhm(v, m), want):
            return m
    raise CompileError(f"average pooling over {n} values: no multiplier divides exactly")


def _avgpool(name: str, calls, label: str, scale: float) -> Pool:
    pool = _ops(calls, "nn.avg_pool2d")[0]
    a = pool.attrs
    if any(int(p) for p in a.padding) and not bool(a.count_include_pad):
        raise CompileError(f"{label}: average pooling with padding divides by the window's "
                           f"valid positions (TFLite); not on the accelerator")
    kernel = tuple(int(k) for k in a.pool_size)
    n = kernel[0] * kernel[1]
    src = pool.args[0].args[0]
    in_shape, out_shape = _chw(src.ty.shape), _chw(pool.ty.shape)
    c = in_shape[0]
    rq = Requant(np.array([average_multiplier(n)], np.int64), np.zeros(1, np.int64),
                 QMIN, QMAX, 0, "tflite")
    return Pool(name, "avg", in_shape, out_shape, kernel, tuple(int(s) for s in a.strides),
                tuple(int(p) for p in a.padding), scale,
                Output("int8", np.full(c, scale), requant=rq), label)


def _maxpool(name: str, calls, label: str, scale: float) -> Pool:
    pool = _ops(calls, "nn.max_pool2d")[0]
    a = pool.attrs
    in_shape, out_shape = _chw(pool.args[0].ty.shape), _chw(pool.ty.shape)
    lo, hi = QMIN, QMAX
    for clip in _ops(calls, "clip"):
        lo, hi = max(lo, int(math.ceil(float(clip.args[1].value)))), \
            min(hi, int(math.floor(float(clip.args[2].value))))
    return Pool(name, "max", in_shape, out_shape, tuple(int(k) for k in a.pool_size),
                tuple(int(s) for s in a.strides), tuple(int(p) for p in a.padding), scale,
                Output("int8", np.full(in_shape[0], scale)), label, (lo, hi))

