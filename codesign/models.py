"""Candidates (the search's genome) and the quantized networks built from them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codesign.errors import ConfigError
from codesign.quant import ActQuant, QConv2d, QLinear, set_quantization
from compiler.quantspec import LayerBits, QuantSpec


@dataclass(frozen=True)
class Candidate:
    """A network: conv layers (width, stride) then one dense classifier, with a bit width pair
    (weights, input activations) per conv layer; the first layer's input (the image) and the
    classifier stay 8-bit. A layer feeding 1-2 bit activations has no ReLU (its sign matters)."""

    widths: tuple[int, ...] = (8, 16)
    strides: tuple[int, ...] = (1, 2)
    kernel: int = 3
    bits: tuple[tuple[int, int], ...] | None = None  # None: all (8, 8)

    def __post_init__(self):
        if len(self.widths) != len(self.strides) or not self.widths:
            raise ConfigError(f"candidate: widths {self.widths} and strides {self.strides} "
                              f"must be non-empty and of equal length")
        if any(w < 1 for w in self.widths) or any(s not in (1, 2) for s in self.strides):
            raise ConfigError(f"candidate: widths must be >= 1 and strides 1 or 2, "
                              f"not {self.widths} / {self.strides}")
        bits = self.layer_bits
        if len(bits) != len(self.widths) or any(b not in (1, 2, 8) for pair in bits for b in pair):
            raise ConfigError(f"candidate: bits must give (weights, activations) in 1, 2, 8 for "
                              f"each of the {len(self.widths)} conv layers, not {self.bits}")
        if bits[0][1] != 8:
            raise ConfigError("candidate: the first layer's input (the image) is 8-bit")

    @property
    def layer_bits(self) -> tuple[tuple[int, int], ...]:
        return tuple(self.bits) if self.bits else tuple((8, 8) for _ in self.widths)


class QuantNet(nn.Module):
    def __init__(self, candidate: Candidate, input_shape: tuple[int, int, int], classes: int):
        super().__init__()
        self.candidate = candidate
        self.input_shape = input_shape
        c, h, w = input_shape
        bits = candidate.layer_bits
        self.input_quant = ActQuant(bits[0][1])
        convs, quants = [], []
        k = candidate.kernel
        for i, (width, stride) in enumerate(zip(candidate.widths, candidate.strides)):
            conv = QConv2d(c, width, k, stride=stride, padding=k // 2)
            conv.w_bits, conv.binary_input = bits[i][0], bits[i][1] == 1
            convs.append(conv)
            quants.append(ActQuant(bits[i + 1][1] if i + 1 < len(bits) else 8))
            c, h, w = width, (h + 2 * (k // 2) - k) // stride + 1, (w + 2 * (k // 2) - k) // stride + 1
        self.convs = nn.ModuleList(convs)
        self.act_quants = nn.ModuleList(quants)
        self.relu = [q.bits == 8 for q in quants]  # no ReLU in front of 1-2 bit activations
        self.fc = QLinear(c * h * w, classes)
        for conv, quant in zip(convs, [self.input_quant, *quants]):
            conv.feed_from(quant)
        self.fc.feed_from(quants[-1])

    def forward(self, x):
        x = self.input_quant(x)
        for conv, quant, relu in zip(self.convs, self.act_quants, self.relu):
            y = conv(x)
            x = quant(F.relu(y) if relu else y)
        return self.fc(torch.flatten(x, 1))

    def quant_spec(self) -> QuantSpec:
        """Bit widths and the trained input scale of every layer, keyed by module path."""
        scales = [self.input_quant.scale] + [q.scale for q in self.act_quants]
        names = [f"convs.{i}" for i in range(len(self.convs))] + ["fc"]
        bits = [*self.candidate.layer_bits, (8, 8)]
        return QuantSpec(layers={n: LayerBits(w, a) for n, (w, a) in zip(names, bits)},
                         act_scales=dict(zip(names, scales)))

    @contextlib.contextmanager
    def float_view(self):
        """The same module with fake quantization off: what torch.export hands to TVM."""
        set_quantization(self, False)
        try:
            yield self.eval()
        finally:
            set_quantization(self, True)

    def size_bits(self) -> int:
        """Weights at their bit width, biases at 32 bits."""
        layers = [*self.convs, self.fc]
        return sum(m.weight.numel() * m.w_bits + m.bias.numel() * 32 for m in layers)


def build_model(candidate: Candidate, input_shape, classes: int, seed: int = 0) -> QuantNet:
    torch.manual_seed(seed)
    return QuantNet(candidate, tuple(input_shape), classes)
