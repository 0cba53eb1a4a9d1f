"""Hand-over by rows and parts of rows (`compiler.plans.lanes`): the planned row operations,
replayed in numpy on memory full of garbage, put every element where the consumer's grid wants
it, zero the padding it reads, and write nothing outside its buffer's rows."""

from dataclasses import replace

import numpy as np
import pytest

from compiler.layout import Layout
from compiler.plans.lanes import plan_lanes

ROW = 128  # default's data row (tiny's: 8 bytes)


def _replay(copy, mem: np.ndarray, row: int = ROW) -> None:
    part = row // 4
    for loop in copy.loops:
        for k in range(loop.count):
            for op in loop.ops:
                acc = np.zeros(row, np.uint8)
                if op.src is not None:
                    s = (op.src + k * loop.src_step) * row
                    acc = mem[s:s + row].copy()
                d = (op.dst + k * loop.dst_step) * row
                for q in op.parts:
                    mem[d + q * part:d + (q + 1) * part] = acc[q * part:(q + 1) * part]
                for w in op.zero_words:  # the LSU's, after the rows
                    mem[d + w:d + w + 4] = 0


def _layouts(rng, bits: int, row: int = ROW):
    """A producer's rows and a consumer's padded grid laid out as the code generator does:
    pitches equal modulo a data row, the first position in its producer's place."""
    # binary channels past C read -1 and the producer's hold anything: whole words only
    c = int(rng.choice([32, 64, 128] if bits == 1 else [3, 8, 16, 24, 32, 64, 128]))
    h, w = int(rng.integers(1, 10)), int(rng.integers(1, 12))
    slot = 8 * max(4, -(-c * bits // 32) * 4)  # whole words
    size = slot // 8
    pt, pl, pb, pr = (int(v) for v in rng.integers(0, 3, 4))
    src = Layout(row * int(rng.integers(0, 8)), (c, h, w), h, w + int(rng.integers(0, 4)),
                 (0, 0), slot, bits, 0)
    need = w + pl + pr + int(rng.integers(0, 3))
    cols = next(n for n in range(need, need + row + 1) if (n - src.cols) * size % row == 0)
    scratch = 65536 + row * int(rng.integers(0, 8))
    lead = (src.addr - scratch - (pt * cols + pl) * size) % row
    rows = h + pt + pb
    dst = Layout(scratch + lead, (c, rows, cols), rows, cols, (0, 0), slot, bits,
                 -1 if bits == 1 else 0)
    return src, dst, (pt, pl, pb, pr)


@pytest.mark.parametrize("row", [ROW, 8])
@pytest.mark.parametrize("seed", range(30))
def test_rows_and_parts_put_every_element_in_place(seed, row):
    rng = np.random.default_rng(seed)
    bits = int(rng.choice([8, 2, 1]))
    src, dst, padding = _layouts(rng, bits, row)
    c, h, w = src.shape
    copy = plan_lanes(src, dst, (c, h, w), padding, row, whole_rows=True)
    assert copy is not None, (src, dst, padding)
    lo, hi = (-128, 127) if bits == 8 else (-1, 1)
    q = rng.integers(lo, hi + 1, (c, h, w))
    if bits == 1:
        q = np.where(q >= 0, 1, -1)
    mem = rng.integers(0, 256, 1 << 18).astype(np.uint8)  # garbage everywhere
    enc = src.encode(q)
    garbage = np.ones(enc.size * 8, bool)  # the producer's padding slots and channels
    garbage[(src.bit_offsets()[..., None] + np.arange(bits)).ravel()] = False
    enc_bits = np.unpackbits(enc, bitorder="little")
    enc_bits[garbage] = rng.integers(0, 2, garbage.sum())
    mem[src.addr:src.addr + src.size] = np.packbits(enc_bits, bitorder="little")
    before = mem.copy()
    _replay(copy, mem, row)

    got = replace(dst, shape=(c, dst.rows, dst.cols)).decode(mem[dst.addr:dst.addr + dst.size])
    pt, pl, pb, pr = padding
    np.testing.assert_array_equal(got[:, pt:pt + h, pl:pl + w], q)
    read = np.zeros((dst.rows, dst.cols), bool)  # what the consumer reads as padding
    read[:pt + h + pb, :pl + w + pr] = True
    read[pt:pt + h, pl:pl + w] = False
    assert np.all(got[:, read] == dst.fill)
    if bits == 1:  # binary: channels past C read -1 too
        every = Layout(dst.addr, (dst.pos_bits, dst.rows, dst.cols), dst.rows, dst.cols, (0, 0),
                       dst.pos_bits, 1, -1).decode(mem[dst.addr:dst.addr + dst.size])
        assert np.all(every[c:, :pt + h + pb, :pl + w + pr] == -1)
    outside = np.ones(mem.size, bool)
    outside[dst.addr // row * row:-(-(dst.addr + dst.size) // row) * row] = False
    np.testing.assert_array_equal(mem[outside], before[outside])


def test_strict_buffers_and_misplaced_bytes():
    """Without its buffer's rows to itself, a copy writes only inside the buffer (or there
    is none); a grid whose bytes would change their place within a row has none."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        src, dst, padding = _layouts(rng, 8)
        copy = plan_lanes(src, dst, src.shape, padding, ROW)
        if copy is None:
            continue
        mem = rng.integers(0, 256, 1 << 18).astype(np.uint8)
        before = mem.copy()
        _replay(copy, mem)
        outside = np.ones(mem.size, bool)
        outside[dst.addr:dst.addr + dst.size] = False
        np.testing.assert_array_equal(mem[outside], before[outside])
    src, dst, padding = _layouts(np.random.default_rng(1), 1)
    src = replace(src, shape=(16, *src.shape[1:]))  # half a slot of binary channels
    assert plan_lanes(src, dst, src.shape, padding, ROW, whole_rows=True) is None
    src = Layout(0, (64, 5, 5), 5, 6, (0, 0), 512, 8, 0)
    dst = Layout(65536 + 4, (64, 7, 8), 7, 8, (0, 0), 512, 8, 0)  # 4 bytes off its place
    assert plan_lanes(src, dst, (64, 5, 5), (1, 1, 1, 1), ROW, whole_rows=True) is None
