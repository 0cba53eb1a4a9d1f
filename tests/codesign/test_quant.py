import numpy as np
import pytest
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
    model = build_model(Candidate.plain((4, 8), (1, 2)), (1, 8, 8), 10)
    spec = model.quant_spec()
    assert set(spec.act_scales) == {"blocks.0.conv", "blocks.1.conv", "fc"}
    assert spec.bits("fc").weights == spec.bits("blocks.0.conv").activations == 8
    x = torch.rand(2, 1, 8, 8)
    with model.float_view() as f:
        assert not f.blocks[0].quant.enabled
    assert model.blocks[0].quant.enabled
    assert model.size_bits() == (4 * 9 + 8 * 4 * 9 + 10 * 8 * 16) * 8 + (4 + 8 + 10) * 32
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize("bits", [8, 2, 1])
def test_fake_quant_weights_equal_the_integer_quantizer(bits):
    from codesign.quant import fake_quant_weight
    w = np.random.default_rng(bits).normal(size=(6, 3, 3, 3)).astype(np.float32)
    q, s = quantize_weights(w, bits)
    got = fake_quant_weight(torch.from_numpy(w), bits).detach().numpy()
    np.testing.assert_allclose(got, q * s[:, None, None, None], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bits", [8, 2, 1])
def test_fake_quant_activations_equal_the_integer_quantizer(bits):
    from compiler.intsem import act_scale, quantize_act
    x = np.random.default_rng(bits).normal(scale=2, size=(4, 50)).astype(np.float32)
    q = ActQuant(bits)
    q.train()
    y = q(torch.from_numpy(x)).detach().numpy()
    a = np.abs(x.astype(np.float64))
    s = act_scale(float(a.max()), float(a.mean()), bits)
    assert np.isclose(q.scale, s, rtol=1e-6)
    np.testing.assert_allclose(y, quantize_act(x, q.scale, bits) * np.float32(q.scale),
                               rtol=1e-6)


class _LowBitQAT(torch.nn.Module):
    """Fake-quantized layers at 8 / ternary / binary, each input behind its quantizer."""

    def __init__(self):
        super().__init__()
        from codesign.quant import QConv2d
        self.q0, self.c0 = ActQuant(8), QConv2d(1, 16, 3, padding=1)
        self.q1, self.c1 = ActQuant(2), QConv2d(16, 16, 3, padding=1)
        self.q2, self.c2 = ActQuant(1), QConv2d(16, 16, 3, padding=1)
        self.q3, self.fc = ActQuant(8), QLinear(16 * 6 * 6, 5)
        self.c1.w_bits, self.c2.w_bits, self.c2.binary_input = 2, 1, True
        for conv, quant in ((self.c0, self.q0), (self.c1, self.q1), (self.c2, self.q2),
                            (self.fc, self.q3)):
            conv.feed_from(quant)

    def forward(self, x):
        x = self.c0(self.q0(x))
        x = self.c1(self.q1(x))
        x = torch.relu(self.c2(self.q2(x)))
        return self.fc(torch.flatten(self.q3(x), 1))


@pytest.mark.rtl
def test_low_bit_qat_model_matches_its_compilation_on_the_rtl():
    """The QAT modules' quantizers give the integers the RTL computes. Exact for the ternary
    codes of the 8-bit layer; the float sums of fake quantization put an exact integer 0 at
    +-1e-9, so a binary sign after it may flip where the integer accumulator is exactly 0."""
    from codesign.quant import set_quantization
    from compiler.quantspec import LayerBits, QuantSpec
    from compiler.pipeline import compile_model
    from hw.config import load_accel_config

    torch.manual_seed(0)
    model = _LowBitQAT()
    x = torch.randn(16, 1, 6, 6)
    model.train()
    model(x)  # calibrate the quantizers' scales
    model.eval()
    pairs = {"c0": (8, 8), "c1": (2, 2), "c2": (1, 1), "fc": (8, 8)}
    quants = {"c0": model.q0, "c1": model.q1, "c2": model.q2, "fc": model.q3}
    spec = QuantSpec(layers={n: LayerBits(w, a) for n, (w, a) in pairs.items()},
                     act_scales={n: q.scale for n, q in quants.items()})
    set_quantization(model, False)
    net = compile_model(model, x[:1], load_accel_config("default"), spec)
    set_quantization(model, True)
    errors = []
    with net.runner("rtl") as rtl, torch.no_grad():
        for i in range(8):
            xi = x[i:i + 1]
            y = rtl(xi.numpy())
            a0 = model.c0(model.q0(xi))
            codes = torch.clamp(torch.round(a0 / model.q1.scale), -1, 1)[0].numpy()
            np.testing.assert_array_equal(rtl.int_outputs["c0"], codes)
            a1 = model.c1(model.q1(a0))[0].numpy()
            flips = np.mean(rtl.int_outputs["c1"] != np.where(a1 >= 0, 1, -1))
            assert flips < 0.1
            want = model(xi).numpy()
            errors.append(np.linalg.norm(y - want) / np.linalg.norm(want))
    assert np.median(errors) < 0.5
