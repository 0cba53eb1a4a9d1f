"""Depthwise convolutions on the vector unit's element-wise form: channels across lanes.

Lane l of a trigger multiplies its weight (channel e = l mod k, one kernel tap) by element e of
its position in the window: k = next_pow2(C) lanes per position, W/(bits k) positions per trigger
(lane group j reads position j, t = stride * s words apart), so 8 channels keep all lanes busy as
well as 128 do. A tap is one trigger per block of positions; channels beyond W/bits take chunks.
"""

from __future__ import annotations

import numpy as np

from compiler.layout import pack_values
from compiler.plans.base import mac_bits, next_pow2
from compiler.plans.window import WindowPlan
from hw.units import EW_PRECISIONS

EW_OPS = {8: EW_PRECISIONS["int8"], 2: EW_PRECISIONS["ternary"], 1: EW_PRECISIONS["binary"]}


class DepthwisePlan(WindowPlan):
    def __init__(self, index, layer, config, mem):
        super().__init__(index, layer, config, mem)
        conv = layer
        bits = mac_bits(conv.w_bits, conv.a_bits)
        lanes, per_word, L = self.w // bits, 32 // bits, self.chunk
        c = conv.in_shape[0]
        s = -(-c // per_word)
        k = next_pow2(c) if c <= lanes else lanes
        t = conv.stride[1] * s
        # Every lane group's elements must lie in the two-row window, wherever it starts.
        while k < lanes and (lanes // k - 1) * t + -(-k // per_word) > L + 1:
            k *= 2
        m = lanes // k  # positions per trigger
        chunks = -(-c // lanes)
        A = k if chunks == 1 else chunks * lanes
        self.bits, self.lanes, self.chunks, self.k = bits, lanes, chunks, k
        vg = (k.bit_length() - 1) << 8 | (t if m > 1 else 0)

        kh, kw = conv.kernel
        w = conv.weight[:, 0].astype(np.int64)  # [C, KH, KW]
        rows, self.entries = [], []
        for q in range(chunks):
            taps = []
            chans = np.arange(q * lanes, min(c, (q + 1) * lanes))
            for ky in range(kh):
                for kx in range(kw):
                    vals = np.full(lanes, 1 if bits == 1 else 0, np.int64)
                    for g in range(m):
                        vals[g * k + np.arange(len(chans))] = w[chans, ky, kx]
                    taps.append(((ky, kx), len(rows)))
                    rows.append(pack_values(vals, bits))
            self.entries.append(taps)
        self.weight_rows = rows
        self.setup(conv, s, bits, A, m, min(A, self.w), bits, vg, lanes, EW_OPS[bits])

    def x_offset(self, key, q: int, block: int) -> int:
        (ky, kx), (_, sx), (dy, dx) = key, self.conv.stride, self.conv.dilation
        return (ky * dy * self.cols + kx * dx) * self.s + q * self.lanes * self.bits // 32 \
            + block * self.n * sx * self.s
