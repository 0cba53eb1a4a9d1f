"""Convolutions (any kernel, stride, padding, dilation, groups) and dense layers on the vector
unit's dot-product form.

A trigger reduces one 32-bit word of packed input channels (4 int8, 16 ternary codes or 32
bits) against each output lane's 32-bit weight slice. Output channels fill the L = W/32 lanes:
a layer with o <= L channels gives each position k = next_pow2(o) lanes and computes L/k
positions per trigger, lane group j reading the window word of position j (t = stride * pitch
words apart, a power of two: input positions then take s words rounded up to a power of two);
wider layers take one position per trigger and ceil(o/L) chunks of L channels. A stem
reading the network input takes its input as patches (im2col: kernel taps packed into the words),
so 1-3 input channels do not leave most of every word empty.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from compiler.errors import CompileError
from compiler.layer_ir import Dense
from compiler.layout import Im2col, pack_values
from compiler.intsem import pad_value
from compiler.plans.base import align_up, mac_bits, next_pow2
from compiler.plans.window import WindowPlan
from hw.units import DOT_PRECISIONS

DOT_OPS = {8: DOT_PRECISIONS["int8"], 2: DOT_PRECISIONS["ternary"], 1: DOT_PRECISIONS["binary"]}


def lanes_per_position(o: int, lanes: int, group: int) -> int:
    """A: the accumulator lanes of one output position: o rounded up to a power of two below
    a lane group, to whole lane groups above it."""
    if o <= lanes:
        return next_pow2(o)
    a = align_up(o, lanes)
    return next_pow2(a) if a < group else align_up(a, group)


class DotPlan(WindowPlan):
    def __init__(self, index, layer, config, mem, im2col: bool = False,
                 row_positions: bool = False):
        super().__init__(index, layer, config, mem)
        conv = layer.as_conv() if isinstance(layer, Dense) else layer
        if conv.w_bits == 1 and conv.groups > 1:
            raise CompileError(f"layer {layer.name}: grouped convolution with binary weights is "
                               f"not supported (a binary weight cannot be 0)")
        bits = mac_bits(conv.w_bits, conv.a_bits)
        weight = conv.dense_weight().astype(np.int64)
        if im2col:
            self.im2col = Im2col(conv.kernel, conv.stride, conv.padding, conv.dilation,
                                 pad_value(conv.a_bits))
            o, oh, ow = conv.out_shape
            taps = conv.kernel[0] * conv.kernel[1] * conv.in_shape[0]
            weight = Im2col.weight(weight)
            conv = replace(conv, in_shape=(taps, oh, ow), weight=weight.astype(np.int8),
                           stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1)
        L, G, per_word = self.chunk, self.group, 32 // bits
        c, o = conv.in_shape[0], conv.out_shape[0]
        s = -(-c // per_word)  # words of input channels
        k = next_pow2(o) if o <= L else L
        if conv.out_shape[2] == 1:  # one position per output row: lane groups would idle
            k = L
        # Lane groups read positions a power of two of words apart (the hardware shifts, it has
        # no crossbar): input positions take `pitch` words, s rounded up to a power of two.
        pitch = next_pow2(s) if k < L else s
        t = conv.stride[1] * pitch
        if t & (t - 1):  # stride 3: one position per trigger
            k, pitch, t = L, s, conv.stride[1] * s
        while k < L and (L // k - 1) * t > L:  # lane groups beyond the two-row window
            k *= 2
        if k == L:
            pitch, t = s, conv.stride[1] * s
        n = L // k
        A = k if o <= L else lanes_per_position(o, L, G)
        if row_positions and o > L:  # one position per trigger either way: whole rows cost
            A = align_up(A, G)  #        only accumulator room and post-processing triggers
        chunks = -(-o // L)
        self.k, self.t, self.chunks, self.bits, self.words = k, t, chunks, bits, s
        vg = (k.bit_length() - 1) << 8 | (t.bit_length() if n > 1 else 0)  # log2(t) + 1

        # Weight rows per (chunk, tap, input word), all-zero ones skipped (grouped layers).
        kh, kw = conv.kernel
        pad_ch = s * per_word - c
        wq = np.zeros((o, s * per_word, kh, kw), np.int64)
        wq[:, :c] = weight
        if bits == 1:  # pad channels read -1 (bit 0): weight +1, corrected in the bias
            wq[:, c:] = 1
        self.bias_fix = pad_ch * kh * kw if bits == 1 else 0
        rows, self.entries = [], []
        for q in range(chunks):
            entries = []
            for ky in range(kh):
                for kx in range(kw):
                    for word in range(s):
                        vals = np.zeros((L, per_word), np.int64)
                        chans = np.arange(q * L, min(o, (q + 1) * L)) if o > L else np.arange(o)
                        block = wq[chans, word * per_word:(word + 1) * per_word, ky, kx]
                        lane = np.arange(len(chans))
                        if bits == 1:
                            vals[:] = 1
                        for g in range(n):  # the same weights for each position's lane group
                            vals[g * k + lane] = block
                        if not block.any() and bits != 1 and entries:
                            continue  # all zero (grouped convolutions): nothing to add
                        entries.append(((ky, kx, word), len(rows)))
                        rows.append(pack_values(vals.reshape(-1), bits))
            self.entries.append(entries)
        self.weight_rows = rows
        self.setup(conv, pitch, bits, A, n, min(A, self.w), bits, vg, L, DOT_OPS[bits])
        self.macs = int(layer.weight.size) * int(np.prod(conv.out_shape[1:]))

    def pitch_free(self, words: int) -> bool:
        """One position per trigger: the positions' spacing is only the window's start; the
        words past the channels' are never read."""
        return self.n == 1 and words >= self.words and 32 * words <= self.w

    def bias(self) -> np.ndarray:
        return self.conv.bias.astype(np.int64) + self.bias_fix

    def x_offset(self, key, q: int, block: int) -> int:
        (ky, kx, word), (_, sx), (dy, dx) = key, self.conv.stride, self.conv.dilation
        return (ky * dy * self.cols + kx * dx) * self.s + word + block * self.n * sx * self.s
