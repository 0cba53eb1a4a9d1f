import numpy as np
import pytest

from compiler.errors import CompileError
from compiler.intsem import (Requant, quantize_act, quantize_activation, quantize_weight,
                             quantize_weights, ternarize, ternary_thresholds, weight_scale)


@pytest.mark.parametrize("scale", [0.4999, 0.3, 0.01, 1.7e-3, 2.2e-10, 0.5, 0.88, 3.7, 1000.0])
def test_requant_tracks_the_real_scale(scale):
    rq = Requant.from_scale(scale, relu=False)
    m, shift = int(rq.multiplier[0]), int(rq.shift[0])
    assert 2**30 <= m < 2**31 and -32 <= shift <= 31 and (shift < 0) == (scale >= 0.5)
    assert abs(m / 2 ** (32 + shift) - scale) / scale < 1e-9
    acc = np.random.default_rng(0).integers(-2**24, 2**24, 10_000)
    acc = acc if scale < 0.5 else acc // 2**16  # large scales: accumulators that fit int8
    want = np.clip(np.round(acc * scale), -128, 127)
    assert np.max(np.abs(rq.apply(acc).astype(np.int64) - want)) <= 1


def test_requant_relu_and_saturation():
    rq = Requant.from_scale(0.25, relu=True)
    assert rq.apply(np.array([-1000, -1, 0, 3, 4, 6, 10_000])).tolist() == [0, 0, 0, 1, 1, 2, 127]


@pytest.mark.parametrize("scale", [2.0**33, 0.0, -0.1])
def test_requant_rejects_scales_it_cannot_express(scale):
    with pytest.raises(CompileError, match="requantization scale"):
        Requant.from_scale(scale, relu=False)


def test_weight_and_activation_ranges():
    w = np.array([-2.0, -1.0, 0.0, 0.5, 2.0])
    s = weight_scale(w)
    assert s == 2.0 / 127
    assert quantize_weight(w, s).tolist() == [-127, -64, 0, 32, 127]  # 63.5 rounds to even
    assert quantize_activation(np.array([-5.0, 0.5, 1.5, 300.0]), 1.0).tolist() == [-5, 0, 2, 127]


def test_per_channel_weights_at_every_precision():
    w = np.array([[-2.0, -1.0, 0.0, 0.5, 2.0], [0.1, -0.3, 0.05, 0.0, 0.2]])
    q8, s8 = quantize_weights(w, 8)
    assert s8.tolist() == [2.0 / 127, 0.3 / 127] and q8[1].tolist() == [42, -127, 21, 0, 85]
    q2, s2 = quantize_weights(w, 2)  # TWN: threshold 0.7 mean|w|, scale mean of the kept
    assert q2.tolist() == [[-1, -1, 0, 0, 1], [1, -1, 0, 0, 1]]
    assert np.allclose(s2, [5 / 3, 0.2])
    q1, s1 = quantize_weights(w, 1)
    assert q1.tolist() == [[-1, -1, 1, 1, 1], [1, -1, 1, 1, 1]] and np.allclose(s1, [1.1, 0.13])
    # invariant to a positive per-channel factor (batch norm folded before quantizing)
    for bits in (8, 2, 1):
        q, _ = quantize_weights(w * np.array([[3.0], [0.01]]), bits)
        assert np.array_equal(q, quantize_weights(w, bits)[0])


def test_activation_quantizers_and_ternary_thresholds():
    x = np.array([-3.0, -0.5, -0.4, 0.0, 0.5, 0.51, 9.0])
    assert quantize_act(x, 1.0, 2).tolist() == [-1, 0, 0, 0, 0, 1, 1]  # half to even
    assert quantize_act(x, 1.0, 1).tolist() == [-1, -1, -1, 1, 1, 1, 1]
    # ternary output from accumulators in units of 0.01: +-1 beyond half a step of 1.0
    thr = ternary_thresholds(1.0, np.array([0.01]))
    assert thr.tolist() == [50]
    assert ternarize(np.array([-51, -50, 50, 51]), thr).tolist() == [-1, 0, 0, 1]
