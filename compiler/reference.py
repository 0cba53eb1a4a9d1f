"""Pieces of the numpy integer reference (the semantics of compiler.intsem) that layer kinds share:
convolution windows and accumulators, and accumulators to a layer's output format. Each kind's
reference and fake-quantized float model live with the kind (`compiler.kinds`)."""

from __future__ import annotations

import numpy as np

from compiler.intsem import QMAX, QMIN, binarize, pad_value, ternarize, wrap32
from compiler.layer_ir import Conv2d, Output


def windows(x: np.ndarray, kernel, stride, padding, dilation, fill) -> np.ndarray:
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
    win = windows(np.asarray(x, np.int64).reshape(layer.in_shape), layer.kernel, layer.stride,
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
