"""Pieces of the numpy integer reference (the semantics of compiler.intsem) that layer kinds share:
convolution windows and accumulators, and accumulators to a layer's output format. Each kind's
reference and fake-quantized float model live with the kind (`compiler.kinds`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from compiler.intsem import QMAX, QMIN, binarize, ternarize, wrap32
from compiler.layer_ir import Conv2d, Output


def windows(x: np.ndarray, kernel, stride, padding, dilation, fill) -> np.ndarray:
    """[..., C, KH, KW, OH, OW] input windows of a padded [..., C, H, W] tensor."""
    *lead, c, h, w = x.shape
    (kh, kw), (sy, sx), (pt, pl, pb, pr), (dy, dx) = kernel, stride, padding, dilation
    dtype = np.float64 if isinstance(fill, float) or x.dtype.kind == "f" else np.int64
    xp = np.full((*lead, c, h + pt + pb, w + pl + pr), fill, dtype)
    xp[..., pt:pt + h, pl:pl + w] = x
    oh = (h + pt + pb - dy * (kh - 1) - 1) // sy + 1
    ow = (w + pl + pr - dx * (kw - 1) - 1) // sx + 1
    out = np.empty((*lead, c, kh, kw, oh, ow), dtype)
    for ky in range(kh):
        for kx in range(kw):
            out[..., ky, kx, :, :] = xp[..., ky * dy:ky * dy + sy * (oh - 1) + 1:sy,
                                        kx * dx:kx * dx + sx * (ow - 1) + 1:sx]
    return out


def padded(layer: Conv2d, x: np.ndarray) -> np.ndarray:
    """A batch of integer inputs [B, C, H, W] with the convolution's padding spelled out."""
    pt, pl, pb, pr = layer.padding
    x = np.asarray(x, np.int64).reshape((-1,) + tuple(layer.in_shape))
    b, c, h, w = x.shape
    xp = np.full((b, c, h + pt + pb, w + pl + pr), layer.pad_fill, np.int64)
    xp[..., pt:pt + h, pl:pl + w] = x
    return xp


def conv2d_accumulators(layer: Conv2d, x: np.ndarray) -> np.ndarray:
    """int32 accumulators [B, O, OH, OW] of a batch of integer inputs [B, C, H, W], bias
    included. Computed in float64, which is exact: every partial sum is an integer far below
    2**53; the wrap to 32 bits comes after, as in the vector unit."""
    xp = torch.from_numpy(padded(layer, x).astype(np.float64))
    w = torch.from_numpy(layer.weight.astype(np.float64))
    with torch.no_grad():
        acc = F.conv2d(xp, w, None, layer.stride, 0, layer.dilation, layer.groups).numpy()
    return wrap32(acc.astype(np.int64) + layer.bias.astype(np.int64)[None, :, None, None])


def weight_flip_deltas(layer: Conv2d, xp: np.ndarray, item, o, c, ky, kx,
                       delta) -> np.ndarray:
    """What changed weights add to the accumulators [F, OH, OW]: weight (o, c, ky, kx) changed
    by `delta` for batch item `item` of the padded inputs xp (`padded`; arrays of one length
    F; c counts within o's group)."""
    (sy, sx), (dy, dx) = layer.stride, layer.dilation
    oh, ow = layer.out_shape[1:]
    per_group = layer.out_shape[0] // layer.groups
    cin = (np.asarray(o) // per_group) * layer.weight.shape[1] + np.asarray(c)
    rows = np.asarray(ky)[:, None] * dy + sy * np.arange(oh)[None]
    cols = np.asarray(kx)[:, None] * dx + sx * np.arange(ow)[None]
    win = xp[np.asarray(item)[:, None, None], cin[:, None, None], rows[:, :, None],
             cols[:, None, :]]
    return np.asarray(delta, np.int64)[:, None, None] * win


def finish(out: Output, v: np.ndarray) -> np.ndarray:
    """Accumulators [B, C, ...] (channel axis 1) -> the layer's output integers; `out`'s
    per-channel parameters may be [C] or, one set per batch item, [B, C]."""
    if out.kind == "int32":
        return wrap32(v).astype(np.int32)
    if out.kind == "int8":  # no requantization: the values pass (max pooling)
        return out.requant.apply(v, axis=1) if out.requant \
            else np.clip(v, QMIN, QMAX).astype(np.int8)
    if out.kind == "binary":
        return binarize(v)
    q = ternarize(v, out.thresholds, axis=1)
    return np.maximum(q, 0).astype(np.int8) if out.relu else q
