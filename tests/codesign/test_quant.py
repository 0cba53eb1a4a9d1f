import numpy as np
import torch

from codesign.models import Candidate, build_model
from codesign.quant import ActQuant, QLinear, fake_quant, weight_scale
from compiler.intsem import quantize_activation, quantize_weights


def test_fake_quant_matches_the_integer_semantics():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 9)).astype(np.float32)
    s = weight_scale(torch.from_numpy(w))  # per output channel
    q, s_int = quantize_weights(w, 8)
    np.testing.assert_allclose(s.numpy().ravel(), s_int, rtol=1e-6)
    fq = fake_quant(torch.from_numpy(w), s, -127, 127).numpy()
    np.testing.assert_allclose(fq, q * s.numpy(), rtol=1e-6)
    x = rng.normal(scale=3, size=1000).astype(np.float32)
    fx = fake_quant(torch.from_numpy(x), torch.tensor(0.02), -128, 127).numpy()
    np.testing.assert_allclose(fx, quantize_activation(x, 0.02) * np.float32(0.02), rtol=1e-6)


def test_straight_through_gradient():
    layer = QLinear(4, 2)
    layer(torch.ones(1, 4)).sum().backward()
    assert layer.weight.grad is not None and torch.all(layer.weight.grad == 1)


def test_act_quant_calibrates_in_training_only():
    q = ActQuant()
    q.train()
    q(torch.tensor([2.0, -1.0]))
    assert q.scale == 2.0 / 127
    q.eval()
    q(torch.tensor([100.0]))
    assert q.scale == 2.0 / 127


def test_quant_spec_and_float_view():
    model = build_model(Candidate((4, 8), (1, 2)), (1, 8, 8), 10)
    spec = model.quant_spec()
    assert set(spec.act_scales) == {"convs.0", "convs.1", "fc"}
    assert spec.bits("fc").weights == spec.bits("convs.0").activations == 8
    x = torch.rand(2, 1, 8, 8)
    with model.float_view() as f:
        assert not f.input_quant.enabled
    assert model.input_quant.enabled
    assert model.size_bits() == (4 * 9 + 8 * 4 * 9 + 10 * 8 * 16) * 8 + (4 + 8 + 10) * 32
    assert model(x).shape == (2, 10)
