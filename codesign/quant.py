"""Fake quantization for quantization-aware training, with the rounding and ranges of the
integer semantics (compiler.intsem): activations int8 / ternary / binary with an EMA-calibrated
scale, symmetric per-output-channel weights at 8 bits, ternary (TWN) or binary (sign, mean |w|),
round half to even, straight-through gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compiler.intsem import BITS, QMAX, TERNARY_THRESHOLD, WMAX, act_range


def fake_quant(x: torch.Tensor, scale: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    q = torch.clamp(torch.round(x / scale), lo, hi) * scale
    return x + (q - x).detach()  # straight-through estimator


def _straight_through(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return x + (q - x).detach()


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """8-bit scale per output channel (axis 0), shaped to broadcast against w."""
    m = w.detach().abs().reshape(len(w), -1).amax(dim=1).reshape((-1,) + (1,) * (w.dim() - 1))
    return torch.where(m > 0, m / WMAX, torch.ones_like(m))


def quantize_weight(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(integers, per-channel scales shaped to broadcast) of intsem.quantize_weights."""
    w = w.detach()
    shape = (-1,) + (1,) * (w.dim() - 1)
    flat = w.abs().reshape(len(w), -1)
    if bits == 8:
        scale = weight_scale(w)
        return torch.clamp(torch.round(w / scale), -WMAX, WMAX), scale
    if bits == 2:
        t = TERNARY_THRESHOLD * flat.mean(dim=1)
        keep = flat > t[:, None]
        n = keep.sum(dim=1)
        scale = torch.where(n > 0, (flat * keep).sum(dim=1) / n.clamp(min=1), torch.ones_like(t))
        return torch.sign(w) * (w.abs() > t.reshape(shape)), scale.reshape(shape)
    m = flat.mean(dim=1)
    return torch.where(w >= 0, 1.0, -1.0), torch.where(m > 0, m, torch.ones_like(m)).reshape(shape)


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """intsem.quantize_weights(w, bits), dequantized, with a straight-through gradient."""
    q, scale = quantize_weight(w, bits)
    return _straight_through(w, q * scale)


def fake_quant_bias(b: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """intsem.quantize_bias: b rounded to the accumulator step s_in * s_w[o]."""
    return _straight_through(b, torch.round(b / step) * step)


class ActQuant(nn.Module):
    """Activation quantizer of `bits` (8, 2, 1); its scale follows an EMA in training: of the
    batch max |x| (8-bit), of 2 mean |x| (ternary) or of mean |x| (binary), as intsem.act_scale."""

    def __init__(self, bits: int = 8, momentum: float = 0.1, approx_sign: bool = False,
                 threshold_channels: int = 0):
        super().__init__()
        if bits not in BITS:
            raise ValueError(f"activation bits {bits}; allowed: {BITS}")
        self.bits, self.momentum = bits, momentum
        self.approx_sign = approx_sign  # binary: ApproxSign's gradient instead of hardtanh's
        # binary: a learnable threshold per channel, sign(x - tau); the producer's bias takes
        # it at export (QuantNet.float_view), so the accelerator's sign needs nothing new
        self.tau = nn.Parameter(torch.zeros(threshold_channels)) if threshold_channels else None
        self.enabled = True
        self.register_buffer("amax", torch.tensor(0.0))  # the statistic behind the scale

    def shifted(self, x: torch.Tensor) -> torch.Tensor:
        if self.tau is None:
            return x
        return x - self.tau.reshape((1, -1) + (1,) * (x.dim() - 2))

    @property
    def scale(self) -> float:
        stat = float(self.amax)
        if self.bits == 8:
            return stat / QMAX if stat > 0 else 1.0 / QMAX
        return stat if stat > 0 else 1.0

    def _statistic(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().abs()
        return a.max() if self.bits == 8 else (2 if self.bits == 2 else 1) * a.mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        x = self.shifted(x)
        if self.training:
            m = self._statistic(x)
            self.amax.copy_(m if float(self.amax) == 0 else
                            (1 - self.momentum) * self.amax + self.momentum * m)
        s = torch.tensor(self.scale)
        if self.bits == 1:  # sign; the gradient passes where |x| <= s (hardtanh STE)
            q = torch.where(x.detach() >= 0, 1.0, -1.0) * s
            if self.approx_sign:  # Bi-Real's ApproxSign: gradient 2 - 2|x/s| where |x| <= s
                t = torch.clamp(x / s, -1, 1)
                return _straight_through(s * (2 * t - t * t.abs()), q)
            return _straight_through(torch.clamp(x, -s, s), q)
        lo, hi = act_range(self.bits)
        return fake_quant(x, s, lo, hi)


class _QuantizedWeights:
    """Weights fake-quantized to `w_bits` while `quantize` is on; the bias too once the layer
    knows its input quantizer (`feed_from`), as the integer bias is rounded to s_in * s_w."""

    quantize = True
    w_bits = 8

    def feed_from(self, quantizer: "ActQuant") -> None:
        self.__dict__["_input_quant"] = quantizer  # not a submodule: the model owns it

    def _params(self):
        if not self.quantize:
            return self.weight, self.bias
        q, scale = quantize_weight(self.weight, self.w_bits)
        w = _straight_through(self.weight, q * scale)
        quantizer = self.__dict__.get("_input_quant")
        if self.bias is None or quantizer is None:
            return w, self.bias
        return w, fake_quant_bias(self.bias, quantizer.scale * scale.reshape(-1))


class QConv2d(_QuantizedWeights, nn.Conv2d):
    """A Conv2d with fake-quantized weights (and bias). With `binary_input`, its padding is -s
    like the integer semantics' (a binary value has no 0)."""

    binary_input = False

    def forward(self, x):
        w, b = self._params()
        if self.quantize and self.binary_input and any(self.padding):
            py, px = self.padding
            x = F.pad(x, (px, px, py, py), value=-float(x.detach().abs().max()))
            return F.conv2d(x, w, b, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)


class QLinear(_QuantizedWeights, nn.Linear):
    def forward(self, x):
        w, b = self._params()
        return F.linear(x, w, b)


def set_quantization(model: nn.Module, enabled: bool) -> None:
    """Turn every fake quantizer of a model on (QAT, evaluation) or off (float export)."""
    for m in model.modules():
        if isinstance(m, ActQuant):
            m.enabled = enabled
        elif isinstance(m, (QConv2d, QLinear)):
            m.quantize = enabled

