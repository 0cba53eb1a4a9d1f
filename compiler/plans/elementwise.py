"""Depthwise convolutions on the vector unit's element-wise form: channels across lanes.

Lane l of a trigger multiplies its weight (channel l mod k, one kernel tap) by element l of the
window: input positions take s words rounded up to a power of two (`pitch`), a trigger's
positions lie k = stride * pitch * 32/bits elements apart and W/(bits k) positions compute at
once, so 8 channels keep all lanes busy as well as 128 do (stride 2: half of them). A tap is
one trigger per block of positions; channels beyond W/bits take chunks.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from compiler.layer_ir import Conv2d, Pool
from compiler.layout import pack_values
from compiler.plans.base import mac_bits, next_pow2
from compiler.plans.window import WindowPlan
from hw.units import EW_PRECISIONS

EW_OPS = {8: EW_PRECISIONS["int8"], 2: EW_PRECISIONS["ternary"], 1: EW_PRECISIONS["binary"]}
WHOLE_ROWS_BYTES = 4096  # memory a small map's positions may take to lie in whole data rows


class DepthwisePlan(WindowPlan):
    def __init__(self, index, layer, config, mem):
        super().__init__(index, layer, config, mem)
        conv = layer
        bits = mac_bits(conv.w_bits, conv.a_bits)
        lanes, per_word = self.w // bits, 32 // bits
        c = conv.in_shape[0]
        s = -(-c // per_word)
        # Lane l reads element l of the window: a trigger's positions lie k elements apart,
        # k = stride * pitch * per_word, input positions taking `pitch` words (s rounded up to a
        # power of two), so that k is a power of two; one position when two do not fit.
        pitch = next_pow2(s)
        k = conv.stride[1] * pitch * per_word
        if k & (k - 1) or 2 * k > lanes:
            # one position per trigger; a position of about whole data rows takes them (its
            # producer's rows then hand over whole, by the vector unit, not byte by byte)
            row = lanes // per_word  # words of a data row
            whole = -(-s // row) * row
            pt, pl, pb, pr = conv.padding
            grid = (conv.in_shape[1] + pt + pb) * (conv.in_shape[2] + pl + pr)
            # (past one row, as a producer of as many lanes writes them; within one, the old
            # rule: a position rounding up to the row)
            cheap = 3 * (whole - s) <= s or 4 * (whole - s) * grid <= WHOLE_ROWS_BYTES
            pitch, k = (whole if pitch == row or (s > row and cheap) else s), lanes
        m = lanes // k  # positions per trigger
        chunks = -(-c // lanes)
        A = k if chunks == 1 else chunks * lanes
        self.bits, self.lanes, self.chunks, self.k = bits, lanes, chunks, k
        vg = 0  # the element-wise form reads the window in order

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
        self.setup(conv, pitch, bits, A, m, min(A, self.w), bits, vg, lanes, EW_OPS[bits])

    def x_offset(self, key, q: int, block: int) -> int:
        (ky, kx), (_, sx), (dy, dx) = key, self.conv.stride, self.conv.dilation
        return (ky * dy * self.cols + kx * dx) * self.s + q * self.lanes * self.bits // 32 \
            + block * self.n * sx * self.s


class AvgPoolPlan(DepthwisePlan):
    """An average pooling as the depthwise convolution with weights 1 and bias 0: it sums the
    same windows (zero padded) into the same accumulators, requantized by the pooling's
    output. Its binding names the pooling, with no MACs counted (they are additions)."""

    def __init__(self, index, pool: Pool, config, mem):
        c, rq = pool.in_shape[0], pool.out.requant
        per_channel = replace(rq, multiplier=np.broadcast_to(rq.multiplier, (c,)).copy(),
                              shift=np.broadcast_to(rq.shift, (c,)).copy())
        conv = Conv2d(pool.name, pool.in_shape, pool.out_shape,
                      np.ones((c, 1, *pool.kernel), np.int8), np.zeros(c, np.int32),
                      tuple(pool.stride), tuple(pool.padding), (1, 1), c, 8, 8, pool.in_scale,
                      replace(pool.out, requant=per_channel), pool.source)
        super().__init__(index, conv, config, mem)
        self.pool = pool

    def emit(self, scratch, enc):
        lines, binding = super().emit(scratch, enc)
        return lines, replace(binding, layer=self.pool, macs=0)
