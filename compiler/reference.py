"""The numpy integer reference of each layer kind (the semantics of compiler.intsem), and the
fake-quantized float model of the same layers (what a torch fake-quant model computes)."""

from __future__ import annotations

import numpy as np

import torch
import torch.nn.functional as F

from compiler.intsem import QMAX, QMIN, binarize, pad_value, quantize_act, ternarize, wrap32
from compiler.layer_ir import Add, Conv2d, Dense, Layer, Output, Pool


def _windows(x: np.ndarray, kernel, stride, padding, dilation, fill) -> np.ndarray:
    """[C, KH, KW, OH, OW] input windows of a padded [C, H, W] tensor."""
    c, h, w = x.shape
    (kh, kw), (sy, sx), (pt, pl, pb, pr), (dy, dx) = kernel, stride, padding, dilation
    dtype = np.float64 if isinstance(fill, float) or x.dtype.kind == "f" else np.int64
    xp = np.full((c, h + pt + pb, w + pl + pr), fill, dtype)
    xp[:, pt:pt + h, pl:pl + w] = x
    oh = (h + pt + pb - dy * (kh - 1) - 1) // sy + 1
    ow = (w + pl + pr - dx * (kw - 1) - 1) // sx + 1
    out = np.empty((c, kh, kw, oh, ow), dtype)
    for ky in range(kh):
        for kx in range(kw):
            out[:, ky, kx] = xp[:, ky * dy:ky * dy + sy * (oh - 1) + 1:sy,
                                kx * dx:kx * dx + sx * (ow - 1) + 1:sx]
    return out


def conv2d_accumulators(layer: Conv2d, x: np.ndarray) -> np.ndarray:
    """int32 accumulators [O, OH, OW] of an integer input [C, H, W], bias included."""
    win = _windows(np.asarray(x, np.int64).reshape(layer.in_shape), layer.kernel, layer.stride,
                   layer.padding, layer.dilation, pad_value(layer.a_bits))
    acc = np.einsum("ockl,cklhw->ohw", layer.dense_weight().astype(np.int64), win)
    return wrap32(acc + layer.bias.astype(np.int64)[:, None, None])


def finish(out: Output, v: np.ndarray) -> np.ndarray:
    """Accumulators (channel axis 0) -> the layer's output integers."""
    if out.kind == "int32":
        return wrap32(v).astype(np.int32)
    if out.kind == "int8":  # no requantization: the values pass (max pooling)
        return out.requant.apply(v) if out.requant else np.clip(v, QMIN, QMAX).astype(np.int8)
    if out.kind == "binary":
        return binarize(v)
    return ternarize(v, out.thresholds)


def run_layer(layer: Layer, x: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Integer input(s) -> integer output, shaped like the layer's output."""
    if isinstance(layer, Dense):
        return run_layer(layer.as_conv(), np.asarray(x).reshape(-1, 1, 1)).reshape(-1)
    if isinstance(layer, Conv2d):
        return finish(layer.out, conv2d_accumulators(layer, x))
    if isinstance(layer, Pool):
        fill = QMIN if layer.kind == "max" else 0
        win = _windows(np.asarray(x, np.int64).reshape(layer.in_shape), layer.kernel,
                       layer.stride, layer.padding, (1, 1), fill)
        acc = win.max(axis=(1, 2)) if layer.kind == "max" else win.sum(axis=(1, 2))
        return finish(layer.out, acc)
    assert isinstance(layer, Add)
    acc = np.asarray(x, np.int64) * layer.ka + np.asarray(b, np.int64) * layer.kb
    return finish(layer.out, wrap32(acc.reshape(layer.shape)))


def fake_quant_layer(layer: Layer, *xs: np.ndarray) -> np.ndarray:
    """Float arithmetic on quantized values: inputs quantized and dequantized with the layer's
    input formats, weights and bias dequantized, the output quantized and dequantized. Differs
    from the integer path only in rounding (fixed-point requantization, bias rounding)."""
    out = layer.out
    if isinstance(layer, (Conv2d, Dense)):
        conv = layer.as_conv() if isinstance(layer, Dense) else layer
        s = conv.in_scale
        x = quantize_act(np.asarray(xs[0]).reshape(conv.in_shape), s, conv.a_bits) * s
        pt, pl, pb, pr = conv.padding
        xt = F.pad(torch.from_numpy(x[None]), (pl, pr, pt, pb), value=pad_value(conv.a_bits) * s)
        ws = np.asarray(conv.w_scale, np.float64)
        w = torch.from_numpy(conv.weight.astype(np.float64) * ws[:, None, None, None])
        b = torch.from_numpy(conv.bias.astype(np.float64) * s * ws)
        y = F.conv2d(xt, w, b, conv.stride, 0, conv.dilation, conv.groups)[0].numpy()
        y = y.reshape(layer.out_shape)
    elif isinstance(layer, Pool):
        s = layer.in_scale
        x = quantize_act(np.asarray(xs[0]).reshape(layer.in_shape), s) * s
        win = _windows(x, layer.kernel, layer.stride, layer.padding, (1, 1),
                       -np.inf if layer.kind == "max" else 0.0)
        y = win.max(axis=(1, 2)) if layer.kind == "max" else win.mean(axis=(1, 2))
    else:
        y = (quantize_act(np.asarray(xs[0]).reshape(layer.shape), layer.a_scale) * layer.a_scale
             + quantize_act(np.asarray(xs[1]).reshape(layer.shape), layer.b_scale) * layer.b_scale)
    if out.kind == "int32":
        return y
    s_out = float(np.asarray(out.scale).ravel()[0])
    if out.kind == "int8":
        lo, hi = (out.requant.lo, out.requant.hi) if out.requant else (QMIN, QMAX)
        return np.clip(np.round(y / s_out), lo, hi) * s_out
    return quantize_act(y, s_out, out.bits) * s_out
