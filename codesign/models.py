"""Candidates (the search's genome) and the quantized networks built from them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codesign.errors import ConfigError
from codesign.quant import ActQuant, QConv2d, QLinear, set_quantization
from compiler.quantspec import QuantSpec


@dataclass(frozen=True)
class Candidate:
    """A network: conv layers (width, stride) with ReLU, then one dense classifier."""

    widths: tuple[int, ...] = (8, 16)
    strides: tuple[int, ...] = (1, 2)
    kernel: int = 3

    def __post_init__(self):
        if len(self.widths) != len(self.strides) or not self.widths:
            raise ConfigError(f"candidate: widths {self.widths} and strides {self.strides} "
                              f"must be non-empty and of equal length")
        if any(w < 1 for w in self.widths) or any(s not in (1, 2) for s in self.strides):
            raise ConfigError(f"candidate: widths must be >= 1 and strides 1 or 2, "
                              f"not {self.widths} / {self.strides}")


class QuantNet(nn.Module):
    def __init__(self, candidate: Candidate, input_shape: tuple[int, int, int], classes: int):
        super().__init__()
        self.candidate = candidate
        self.input_shape = input_shape
        c, h, w = input_shape
        self.input_quant = ActQuant()
        convs, quants = [], []
        k = candidate.kernel
        for width, stride in zip(candidate.widths, candidate.strides):
            convs.append(QConv2d(c, width, k, stride=stride, padding=k // 2))
            quants.append(ActQuant())
            c, h, w = width, (h + 2 * (k // 2) - k) // stride + 1, (w + 2 * (k // 2) - k) // stride + 1
        self.convs = nn.ModuleList(convs)
        self.act_quants = nn.ModuleList(quants)
        self.fc = QLinear(c * h * w, classes)

    def forward(self, x):
        x = self.input_quant(x)
        for conv, quant in zip(self.convs, self.act_quants):
            x = quant(F.relu(conv(x)))
        return self.fc(torch.flatten(x, 1))

    def quant_spec(self) -> QuantSpec:
        """All 8-bit, with the trained input scale of every layer, keyed by module path."""
        scales = [self.input_quant.scale] + [q.scale for q in self.act_quants]
        names = [f"convs.{i}" for i in range(len(self.convs))] + ["fc"]
        return QuantSpec(act_scales=dict(zip(names, scales)))

    @contextlib.contextmanager
    def float_view(self):
        """The same module with fake quantization off: what torch.export hands to TVM."""
        set_quantization(self, False)
        try:
            yield self.eval()
        finally:
            set_quantization(self, True)

    def size_bits(self) -> int:
        """Weights at 8 bits, biases at 32 bits."""
        layers = [*self.convs, self.fc]
        return sum(m.weight.numel() * 8 + m.bias.numel() * 32 for m in layers)


def build_model(candidate: Candidate, input_shape, classes: int, seed: int = 0) -> QuantNet:
    torch.manual_seed(seed)
    return QuantNet(candidate, tuple(input_shape), classes)
