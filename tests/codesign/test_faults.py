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


def _flips(tensor, items, indices, masks):
    from codesign.faults import Flips
    return {(tensor.layer, tensor.tensor): Flips(tensor, np.array(items), np.array(indices),
                                                 np.array(masks, np.uint64))}


def test_secded_corrects_one_flip_per_word_detects_two_and_passes_three():
    from codesign.faults import protect
    t = SiteTensor("a", "weights", "weight", "int8", 8)  # two 32-bit words
    rng = np.random.default_rng(0)
    # item 0: one flip in word 0; item 1: two in word 0; item 2: three in word 1
    flips = _flips(t, [0, 1, 1, 2, 2], [0, 0, 1, 4, 5], [1, 1, 4, 3, 1])
    kept, detected = protect(flips, "secded", 0.0, rng)
    f = kept[("a", "weight")]
    assert list(f.item) == [2, 2] and list(f.index) == [4, 5] and list(f.mask) == [3, 1]
    assert list(detected) == [1]
    parity, caught = protect(flips, "parity", 0.0, rng)  # odd counts caught, even pass
    assert list(parity[("a", "weight")].item) == [1, 1] and list(caught) == [0, 2]
    acc = SiteTensor("a", "accumulators", "accumulator", "int32", 4)  # registers: unprotected
    assert protect(_flips(acc, [0], [0], [1]), "secded", 0.0, rng)[0]


def test_protection_is_a_config_field_with_its_cost_and_no_rtl_change():
    from hw.config import ConfigError, load_accel_config, parse_accel_config
    base = load_accel_config("tiny")
    secded = parse_accel_config({**base.to_dict(), "dmem_protection": "secded"})
    assert secded.hardware_hash() == base.hardware_hash()
    assert secded.energy["dmem_read_bit"] == pytest.approx(base.energy["dmem_read_bit"] * 39 / 32)
    from hw.area import memory_bits
    assert memory_bits(secded)["dmem"] == memory_bits(base)["dmem"] * 39 // 32
    with pytest.raises(ConfigError, match="dmem_protection.*'ecc'.*secded"):
        parse_accel_config({**base.to_dict(), "dmem_protection": "ecc"})


def test_per_tensor_weight_scales_are_one_scale_and_a_spec_field():
    from compiler.errors import CompileError
    from compiler.intsem import quantize_weights
    from compiler.quantspec import QuantSpec
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3)) * np.array([1, 2, 4, 8])[:, None,
                                                                                   None, None]
    for bits in (8, 2, 1):
        q, s = quantize_weights(w, bits, per_tensor=True)
        assert np.all(s == s[0]) and q.shape == w.shape
        assert not np.all(quantize_weights(w, bits)[1] == s[0])  # per channel: four scales
    spec = QuantSpec.from_dict({"default": {"weights": 8, "scales": "per_tensor"},
                                "layers": {"fc": {"weights": 2}}})
    assert spec.bits("conv").scales == spec.bits("fc").scales == "per_tensor"
    with pytest.raises(CompileError, match="scales: 'per_row'"):
        QuantSpec.from_dict({"default": {"scales": "per_row"}})
