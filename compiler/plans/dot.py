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
from compiler.layout import Im2col, Layout, pack_values
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


def flat_view(layer: Dense, grid: tuple[int, int, int], bits: int):
    """Dense `layer` (its input [C, H, W] flattened) as a 1 x 1 convolution over the words of
    a grid of (rows, columns, position bits) holding that input: element (c, y, x) at
    element (y * columns + x) * (position bits / bits) + c of the grid, every other element
    (padding channels and positions, which may hold anything) with weight 0 (the 8- and
    2-bit dot forms hold it whatever the layer's weight bits; `bits` is the form's)."""
    rows, cols, pos_bits = grid
    c, h, w = layer.in_shape
    if c * bits > pos_bits or h > rows or w > cols or pos_bits % bits or bits == 1:
        raise CompileError(f"layer {layer.name}: cannot read its {layer.in_shape} input as a "
                           f"grid of {rows} x {cols} positions of {pos_bits} bits")
    per_pos, per_word = pos_bits // bits, 32 // bits
    k = align_up(rows * cols * per_pos, per_word)
    y, x, ch = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    at = ((y * cols + x) * per_pos + ch).ravel()
    weight = np.zeros((layer.out_features, k), np.int8)
    weight[:, at] = layer.weight[:, (ch * h * w + y * w + x).ravel()]
    conv = layer.as_conv()
    return replace(conv, in_shape=(k, 1, 1), weight=weight.reshape(layer.out_features, k, 1, 1))


class DotPlan(WindowPlan):
    def __init__(self, index, layer, config, mem, im2col: bool = False,
                 row_positions: bool = False, word_positions: bool = False,
                 grid: tuple[int, int, int] | None = None):
        super().__init__(index, layer, config, mem)
        conv = layer.as_conv() if isinstance(layer, Dense) else layer
        self.grid = grid
        if grid is not None:
            conv = flat_view(layer, grid, mac_bits(conv.w_bits, conv.a_bits))
        if conv.w_bits == 1 and conv.groups > 1:
            raise CompileError(f"layer {layer.name}: grouped convolution with binary weights is "
                               f"not supported (a binary weight cannot be 0)")
        bits = mac_bits(conv.w_bits, conv.a_bits)
        weight = conv.dense_weight().astype(np.int64)
        if im2col:
            self.im2col = Im2col(conv.kernel, conv.stride, conv.padding, conv.dilation,
                                 conv.pad_fill)
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
        out_bits = {"int8": 8, "ternary": 2, "binary": 1}.get(conv.out.kind, 32)
        if word_positions and k * out_bits < 32 <= L * out_bits:
            # Positions of whole words, read by the consumer as they lie in a row, or a byte
            # copy of every position (~4 cycles a byte): more MAC triggers per position where
            # fewer positions share one, worth it while they cost less than the copy.
            wide = 32 // out_bits
            triggers = conv.kernel[0] * conv.kernel[1] * s  # per L // k positions
            if triggers * (wide - k) / L < 4 * k * out_bits / 8 or k * out_bits < 8:
                k = wide  # (positions of less than a byte: no copy could move them)
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
        if row_positions and n == 1:  # one position per trigger either way: whole rows
            A = align_up(A, G)  #           cost only accumulator room and post-processing
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
            entries, zero = [], None
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
                        if not block.any() and bits != 1:  # grouped: nothing to add
                            zero = zero or ((ky, kx, word), vals)
                            continue
                        entries.append(((ky, kx, word), len(rows)))
                        rows.append(pack_values(vals.reshape(-1), bits))
            if not entries:  # all weights zero: one trigger still starts the sums
                entries.append((zero[0], len(rows)))
                rows.append(pack_values(zero[1].reshape(-1), bits))
            self.entries.append(entries)
        self.weight_rows = rows
        self.setup(conv, pitch, bits, A, n, min(A, self.w), bits, vg, L, DOT_OPS[bits])
        self.macs = int(layer.weight.size) * int(np.prod(conv.out_shape[1:]))

    def emit(self, scratch, enc):
        lines, b = super().emit(scratch, enc)
        if self.grid is None:
            return lines, b
        rows, cols, pos_bits = self.grid  # the flat input read as its producer's grid
        x = b.inputs[0]
        grid = Layout(x.addr, tuple(self.layer.in_shape), rows, cols, (0, 0), pos_bits,
                      x.bits, x.fill)
        return lines, replace(b, inputs=(grid,), row_tiling=None)

    def adopt_grid(self, cols: int, pos_bits: int) -> bool:
        return self.grid is None and super().adopt_grid(cols, pos_bits)

    def lay_out_input(self, cols: int, lead: int) -> bool:
        return self.grid is None and super().lay_out_input(cols, lead)

    def pitch_free(self, words: int) -> bool:
        """One position per trigger: the positions' spacing is only the window's start; the
        words past the channels' are never read."""
        return self.n == 1 and words >= self.words and 32 * words <= self.w

    def bias(self) -> np.ndarray:
        return self.conv.bias.astype(np.int64) + self.bias_fix

    def x_offset(self, key, q: int, block: int) -> int:
        (ky, kx, word), (_, sx), (dy, dx) = key, self.conv.stride, self.conv.dilation
        return (ky * dy * self.cols + kx * dx) * self.s + word + block * self.n * sx * self.s
