import numpy as np
import pytest

from compiler.errors import CompileError
from compiler.intsem import Requant, quantize_activation, quantize_weight, weight_scale


@pytest.mark.parametrize("scale", [0.4999, 0.3, 0.01, 1.7e-3, 2.2e-6])
def test_requant_tracks_the_real_scale(scale):
    rq = Requant.from_scale(scale, relu=False)
    assert 2**30 <= rq.multiplier < 2**31 and rq.shift >= 0
    assert abs(rq.multiplier / 2 ** (32 + rq.shift) - scale) / scale < 1e-9
    acc = np.random.default_rng(0).integers(-2**24, 2**24, 10_000)
    want = np.clip(np.round(acc * scale), -128, 127)
    assert np.max(np.abs(rq.apply(acc).astype(np.int64) - want)) <= 1


def test_requant_relu_and_saturation():
    rq = Requant.from_scale(0.25, relu=True)
    assert rq.apply(np.array([-1000, -1, 0, 3, 4, 6, 10_000])).tolist() == [0, 0, 0, 1, 1, 2, 127]


@pytest.mark.parametrize("scale", [0.5, 2.0, 0.0, -0.1])
def test_requant_rejects_scales_it_cannot_express(scale):
    with pytest.raises(CompileError, match="requantization scale"):
        Requant.from_scale(scale, relu=False)


def test_weight_and_activation_ranges():
    w = np.array([-2.0, -1.0, 0.0, 0.5, 2.0])
    s = weight_scale(w)
    assert s == 2.0 / 127
    assert quantize_weight(w, s).tolist() == [-127, -64, 0, 32, 127]  # 63.5 rounds to even
    assert quantize_activation(np.array([-5.0, 0.5, 1.5, 300.0]), 1.0).tolist() == [-5, 0, 2, 127]
