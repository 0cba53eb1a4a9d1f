"""How activation tensors sit in the data memory, and their packing to and from bytes.

The executor writes a layer's inputs and reads its outputs through these; the code generator
decides the layouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """An activation tensor [C, H, W] in the data memory.

    Positions of a (rows x cols) grid lie `pos_bits` apart, row-major from `addr`; the tensor's
    element (c, y, x) is at grid position (y + origin[0], x + origin[1]), channel c at bit offset
    c * bits; values are int8 bytes (bits 8), ternary codes (2) or bits (1: 1 = +1, 0 = -1).
    Grid positions outside the tensor and channels past C hold `fill` (binary: always -1).
    """

    addr: int
    shape: tuple[int, int, int]
    rows: int
    cols: int
    origin: tuple[int, int]
    pos_bits: int
    bits: int
    fill: int = 0

    @property
    def size(self) -> int:
        return -(-self.rows * self.cols * self.pos_bits // 8)

    @property
    def held_bytes(self) -> int:
        """Bytes from `addr` up to and including the tensor's last element: what a reader of
        its values needs (the grid's trailing padding is fill)."""
        return -(-(int(self.bit_offsets().max()) + self.bits) // 8)

    def bit_offsets(self) -> np.ndarray:
        """Bit offset of every element (c, y, x) of the tensor, shape [C, H, W]."""
        c, h, w = self.shape
        pos = (np.arange(h)[:, None] + self.origin[0]) * self.cols \
            + np.arange(w)[None, :] + self.origin[1]
        return pos[None] * self.pos_bits + np.arange(c)[:, None, None] * self.bits

    def encode(self, q: np.ndarray) -> np.ndarray:
        """The whole buffer (padding included) holding integer tensor q [C, H, W]."""
        n_bits = self.rows * self.cols * self.pos_bits
        fields = np.full(n_bits // self.bits, self.fill, np.int64)
        fields[self.bit_offsets().ravel() // self.bits] = np.asarray(q, np.int64).ravel()
        return pack_values(fields, self.bits)

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Integer tensor [C, H, W] from the buffer's bytes."""
        offsets = self.bit_offsets()
        if self.bits >= 8:
            data = np.frombuffer(np.asarray(raw, np.uint8).tobytes(),
                                 np.int8 if self.bits == 8 else np.int32)
            return data[offsets // self.bits].astype(np.int64)
        bits = np.unpackbits(np.asarray(raw, np.uint8), bitorder="little")
        if self.bits == 1:
            return np.where(bits[offsets] == 1, 1, -1)
        nz, neg = bits[offsets], bits[offsets + 1]
        return nz.astype(np.int64) * (1 - 2 * neg.astype(np.int64))


@dataclass(frozen=True)
class RowTiling:
    """A layer run in tiles of `rows` output rows, when its activations do not fit at once.

    The executor pads the input (`padding`: top, left, bottom, right, with `fill`) and writes tile
    t's window of padded rows [t * step, t * step + in_rows) to the input buffer before each run.
    """

    rows: int
    tiles: int
    step: int
    in_rows: int
    padding: tuple[int, int, int, int]
    fill: int
    cycles_per_tile: int
    # the layer's own code loops over the tiles instead: each window comes from the off-chip
    # memory (where the host wrote the whole padded input) and each tile's rows go back there
    in_code: bool = False


@dataclass(frozen=True)
class Im2col:
    """A convolution's input written as patches: channel (ky * KW + kx) * C + c of output
    position (y, x) holds input (c, y * sy + ky * dy - pt, x * sx + kx * dx - pl), `fill` outside.
    The convolution becomes a 1 x 1 one over KH * KW * C channels (a stem whose few input
    channels would leave most of each 32-bit activation word empty)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    fill: int

    def apply(self, x: np.ndarray) -> np.ndarray:
        """[C, H, W] -> [KH * KW * C, OH, OW]."""
        from compiler.reference import windows
        win = windows(np.asarray(x, np.int64), self.kernel, self.stride, self.padding,
                      self.dilation, self.fill)  # [C, KH, KW, OH, OW]
        c, kh, kw, oh, ow = win.shape
        return win.transpose(1, 2, 0, 3, 4).reshape(kh * kw * c, oh, ow)

    @staticmethod
    def weight(w: np.ndarray) -> np.ndarray:
        """[O, C, KH, KW] -> [O, KH * KW * C, 1, 1] in the patches' channel order."""
        o = len(w)
        return np.asarray(w).transpose(0, 2, 3, 1).reshape(o, -1, 1, 1)


def pack_values(values: np.ndarray, bits: int) -> np.ndarray:
    """Signed values -> packed little-endian fields (the vector unit's weight/activation
    format): int8 bytes, ternary codes (bit 0 nonzero, bit 1 negative), bits (1 = +1)."""
    v = np.asarray(values, np.int64)
    if bits == 32:
        return v.astype("<i4").view(np.uint8)
    if bits == 8:
        return v.astype(np.int8).view(np.uint8)
    if bits == 2:
        codes = ((v != 0) | ((v < 0) << 1)).astype(np.uint8)
    else:
        codes = (v > 0).astype(np.uint8)
    fields = np.unpackbits(codes[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(fields.ravel(), bitorder="little")
