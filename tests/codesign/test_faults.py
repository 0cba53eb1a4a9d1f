"""The fault model: stored formats as the accelerator packs them, and Bernoulli bit flips."""

from __future__ import annotations

import numpy as np
import pytest

from codesign.errors import CodesignError
from codesign.faults import FORMAT_BITS, SiteTensor, decode, draw, encode, flip
from compiler.layout import Layout, pack_values


@pytest.mark.parametrize("fmt,values", [
    ("int8", np.arange(-128, 128)), ("int32", np.array([-2**31, -7, 0, 5, 2**31 - 1])),
    ("shift", np.arange(-32, 32)), ("ternary", np.array([-1, 0, 1])),
    ("binary", np.array([-1, 1]))])
def test_codes_round_trip(fmt, values):
    assert np.array_equal(decode(encode(values, fmt), fmt), values)
    assert int(encode(values, fmt).max()) < 1 << FORMAT_BITS[fmt]


@pytest.mark.parametrize("bits,fmt", [(8, "int8"), (2, "ternary"), (1, "binary")])
def test_a_flip_is_the_flip_of_the_packed_bit_the_accelerator_reads(bits, fmt):
    """Flipping bit b of a value's code gives what the layout decodes after flipping that bit
    of the packed buffer (the words the accelerator holds)."""
    rng = np.random.default_rng(bits)
    q = {8: rng.integers(-128, 128, (3, 2, 4)), 2: rng.integers(-1, 2, (3, 2, 4)),
         1: rng.choice([-1, 1], (3, 2, 4))}[bits]
    layout = Layout(0, (3, 2, 4), 2, 4, (0, 0), 32, bits)
    raw = np.unpackbits(layout.encode(q), bitorder="little")
    offsets = layout.bit_offsets()
    for _ in range(40):
        c, y, x, b = (int(rng.integers(n)) for n in (3, 2, 4, bits))
        flipped = raw.copy()
        flipped[offsets[c, y, x] + b] ^= 1
        got = layout.decode(np.packbits(flipped, bitorder="little"))[c, y, x]
        assert got == flip(np.array([q[c, y, x]]), fmt, np.array([1 << b], np.uint64))[0]


def test_weights_pack_like_the_codes():
    v = np.array([-1, 0, 1, 1, -1, 0, 0, 1])
    codes = encode(v, "ternary")
    packed = np.unpackbits(pack_values(v, 2), bitorder="little")[:16].reshape(-1, 2)
    assert np.array_equal(packed[:, 0] | packed[:, 1] << 1, codes)


def test_flips_are_independent_bernoulli_per_bit():
    tensors = [SiteTensor("a", "weights", "weight", "int8", 1000),
               SiteTensor("a", "params", "bias", "int32", 10)]
    ber, batch = 3e-4, 2000
    flips = draw(tensors, ber, batch, np.random.default_rng(0))
    n = sum(int(np.bitwise_count(f.mask).sum()) for f in flips.values())
    expect = ber * batch * (8000 + 320)
    assert abs(n - expect) < 5 * np.sqrt(expect)  # 5 sigma of a binomial count
    w = flips[("a", "weight")]
    assert w.item.max() < batch and w.index.max() < 1000 and int(w.mask.max()) < 256
    keys = w.item * 1000 + w.index
    assert len(np.unique(keys)) == len(keys)  # one entry per faulty value
    per_bit = np.bincount(np.log2(w.mask[np.bitwise_count(w.mask) == 1]).astype(int), minlength=8)
    assert per_bit.min() > 0.5 * per_bit.mean()  # every bit position is hit alike


def test_no_faults_at_zero_ber_and_bad_rates_are_errors():
    t = [SiteTensor("a", "weights", "weight", "int8", 100)]
    assert draw(t, 0.0, 10, np.random.default_rng(0)) == {}
    with pytest.raises(CodesignError, match="bit-error rate"):
        draw(t, 1.5, 10, np.random.default_rng(0))
