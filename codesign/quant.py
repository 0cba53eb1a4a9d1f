"""Fake quantization for quantization-aware training, with the rounding and ranges of the
integer semantics (compiler.intsem): symmetric int8 activations with an EMA-calibrated range,
symmetric per-output-channel int8 weights, round half to even, straight-through gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compiler.intsem import QMAX, QMIN, WMAX


def fake_quant(x: torch.Tensor, scale: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    q = torch.clamp(torch.round(x / scale), lo, hi) * scale
    return x + (q - x).detach()  # straight-through estimator


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """Per output channel (axis 0), shaped to broadcast against w."""
    m = w.detach().abs().reshape(len(w), -1).amax(dim=1).reshape((-1,) + (1,) * (w.dim() - 1))
    return torch.where(m > 0, m / WMAX, torch.ones_like(m))


class ActQuant(nn.Module):
    """int8 activation quantizer; its range follows an EMA of the batch maximum in training."""

    def __init__(self, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.enabled = True
        self.register_buffer("amax", torch.tensor(0.0))

    @property
    def scale(self) -> float:
        return float(self.amax) / QMAX if float(self.amax) > 0 else 1.0 / QMAX

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.training:
            m = x.detach().abs().max()
            self.amax.copy_(m if float(self.amax) == 0 else
                            (1 - self.momentum) * self.amax + self.momentum * m)
        return fake_quant(x, torch.tensor(self.scale), QMIN, QMAX)


class QConv2d(nn.Conv2d):
    """A Conv2d whose weights are fake-quantized to int8 while `quantize` is on."""

    quantize = True

    def forward(self, x):
        w = fake_quant(self.weight, weight_scale(self.weight), -WMAX, WMAX) \
            if self.quantize else self.weight
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class QLinear(nn.Linear):
    quantize = True

    def forward(self, x):
        w = fake_quant(self.weight, weight_scale(self.weight), -WMAX, WMAX) \
            if self.quantize else self.weight
        return F.linear(x, w, self.bias)


def set_quantization(model: nn.Module, enabled: bool) -> None:
    """Turn every fake quantizer of a model on (QAT, evaluation) or off (float export)."""
    for m in model.modules():
        if isinstance(m, ActQuant):
            m.enabled = enabled
        elif isinstance(m, (QConv2d, QLinear)):
            m.quantize = enabled
