"""The numpy integer reference of each layer kind (the semantics of compiler.intsem)."""

from __future__ import annotations

import numpy as np

from compiler.layer_ir import Conv2d, Dense, Layer


def conv2d_accumulators(layer: Conv2d, x: np.ndarray) -> np.ndarray:
    """int64 accumulators [O, OH, OW] of an int8 input [C, H, W], bias included."""
    c, h, w = layer.in_shape
    o, oh, ow = layer.out_shape
    kh, kw = layer.weight.shape[2:]
    (sy, sx), (py, px), (dy, dx) = layer.stride, layer.padding, layer.dilation
    xp = np.zeros((c, h + 2 * py + kh * dy, w + 2 * px + kw * dx), np.int64)
    xp[:, py:py + h, px:px + w] = x.reshape(c, h, w)
    wt = layer.weight.astype(np.int64)
    acc = np.zeros((o, oh, ow), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, ky * dy:ky * dy + sy * oh:sy, kx * dx:kx * dx + sx * ow:sx]
            acc += np.einsum("oc,chw->ohw", wt[:, :, ky, kx], patch[:, :oh, :ow])
    return acc + layer.bias.astype(np.int64)[:, None, None]


def run_layer(layer: Layer, x: np.ndarray) -> np.ndarray:
    """int8 input -> int8 output (requantized) or int32 accumulators."""
    conv = layer.as_conv() if isinstance(layer, Dense) else layer
    acc = conv2d_accumulators(conv, np.asarray(x))
    if isinstance(layer, Dense):
        acc = acc.reshape(layer.out_features)
    if layer.requant is None:
        return ((acc + 2**31) % 2**32 - 2**31).astype(np.int32)
    return layer.requant.apply(acc)
