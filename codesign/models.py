"""Candidates (the search's genome) and the quantized networks built from them."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codesign.errors import ConfigError
from codesign.quant import ActQuant, QConv2d, QLinear, set_quantization
from compiler.quantspec import LayerBits, QuantSpec

BITS = (1, 2, 8)
BINARIZERS = ("ste", "approxsign", "threshold")
HEADS = ("flatten", "pool")  # what the classifier reads: all features, or their global mean


@dataclass(frozen=True)
class BlockSpec:
    """One block: a k x k convolution (or, `depthwise`, a depthwise k x k and a pointwise 1 x 1
    convolution) with `width` output channels; `residual` adds the block's input (through a
    1 x 1 projection when the stride or width changes). `bits` = (weights, input activations).

    Repairs of binary networks (arXiv 2206.12322), each free at inference or priced on the
    accelerator: `binarizer` of binary input activations ("ste": sign with hardtanh's
    straight-through gradient; "approxsign": Bi-Real's piecewise-quadratic gradient, training
    only; "threshold": a learnable threshold per channel, folded into the producer's bias),
    `norm` (batch norm on the convolution's output, before the next sign: folded into its
    weights and bias), `shortcut8` (an 8-bit projection shortcut where the residual
    changes shape: real-valued downsampling, priced in int8 MACs)."""

    width: int
    stride: int = 1
    kernel: int = 3
    depthwise: bool = False
    residual: bool = False
    bits: tuple[int, int] = (8, 8)
    binarizer: str = "ste"
    norm: bool = False
    shortcut8: bool = False

    def describe(self) -> str:
        kind = "dw" if self.depthwise else "conv"
        repairs = "".join(tag for tag, on in (
            ("+bn", self.norm), ("+as", self.binarizer == "approxsign"),
            ("+thr", self.binarizer == "threshold"), ("+sc8", self.shortcut8)) if on)
        return (f"{kind}{self.kernel}x{self.kernel}/{self.stride}->{self.width}"
                f"{'+res' if self.residual else ''}{repairs} {self.bits[0]}/{self.bits[1]}")


@dataclass(frozen=True)
class Candidate:
    """A network: blocks, then a dense classifier on the flattened (or globally averaged)
    features. The first block reads the image, which is 8-bit."""

    blocks: tuple[BlockSpec, ...]
    head: str = "flatten"
    classifier_bits: tuple[int, int] = (8, 8)
    ensemble: int = 1  # stochastic bitwise members whose logits are summed (codesign.ensemble)

    def __post_init__(self):
        if not self.blocks:
            raise ConfigError("candidate: at least one block")
        for i, b in enumerate(self.blocks):
            if b.width < 1 or b.stride not in (1, 2) or b.kernel not in (1, 3, 5, 7):
                raise ConfigError(f"candidate: block {i}: width >= 1, stride 1 or 2 and kernel "
                                  f"1, 3, 5 or 7, not {b}")
            if b.binarizer not in BINARIZERS:
                raise ConfigError(f"candidate: block {i}: binarizer {b.binarizer!r}; allowed: "
                                  f"{', '.join(BINARIZERS)}")
            if b.binarizer == "threshold" and (b.bits[1] != 1 or i == 0 or b.residual and
                                               b.stride == 1 and b.width ==
                                               self.blocks[i - 1].width):
                raise ConfigError(f"candidate: block {i}: a learnable threshold needs binary "
                                  f"input activations from an earlier block and no identity "
                                  f"shortcut (which would see the shifted input)")
        for where, pair in [*((f"block {i}", b.bits) for i, b in enumerate(self.blocks)),
                            ("classifier", self.classifier_bits)]:
            if len(pair) != 2 or any(v not in BITS for v in pair):
                raise ConfigError(f"candidate: {where}: bits (weights, activations) must be in "
                                  f"{BITS}, not {pair}")
        if self.blocks[0].bits[1] != 8:
            raise ConfigError("candidate: the first block's input (the image) is 8-bit")
        if self.head not in HEADS:
            raise ConfigError(f"candidate: head {self.head!r}; allowed: {', '.join(HEADS)}")
        if not 1 <= self.ensemble <= 64:
            raise ConfigError(f"candidate: ensemble {self.ensemble}: 1..64 members")
        if self.ensemble > 1 and not self.bitwise():
            raise ConfigError(f"candidate: an ensemble of {self.ensemble} needs binary or "
                              f"ternary weights somewhere (its members would be identical)")

    def bitwise(self) -> bool:
        """Whether any layer has binary or ternary weights (what ensemble members sample)."""
        return any(b.bits[0] < 8 for b in self.blocks) or self.classifier_bits[0] < 8

    @classmethod
    def plain(cls, widths, strides, kernel: int = 3, bits=None) -> "Candidate":
        """Plain conv layers (the demo's model); `bits` one (weights, activations) per layer."""
        if len(widths) != len(strides) or not widths:
            raise ConfigError(f"candidate: widths {widths} and strides {strides} must be "
                              f"non-empty and of equal length")
        bits = bits or [(8, 8)] * len(widths)
        if len(bits) != len(widths):
            raise ConfigError(f"candidate: {len(bits)} bit pairs for {len(widths)} layers")
        return cls(tuple(BlockSpec(w, s, kernel, bits=tuple(b))
                         for w, s, b in zip(widths, strides, bits)))

    @classmethod
    def from_dict(cls, d: dict) -> "Candidate":
        return cls(tuple(BlockSpec(**{**b, "bits": tuple(b["bits"])}) for b in d["blocks"]),
                   d["head"], tuple(d["classifier_bits"]), d.get("ensemble", 1))

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.ensemble == 1:  # single networks keep the keys of earlier runs
            del d["ensemble"]
        defaults = {"binarizer": "ste", "norm": False, "shortcut8": False}
        d["blocks"] = [{k: v for k, v in b.items() if defaults.get(k, object()) != v}
                       for b in d["blocks"]]
        return d

    def describe(self) -> str:
        return " | ".join([b.describe() for b in self.blocks] +
                          [f"{self.head} fc {self.classifier_bits[0]}/{self.classifier_bits[1]}"]
                          ) + (f" x{self.ensemble} members" if self.ensemble > 1 else "")


def _conv(c_in, c_out, k, stride, w_bits, quant: ActQuant, groups=1) -> QConv2d:
    conv = QConv2d(c_in, c_out, k, stride=stride, padding=k // 2, groups=groups)
    conv.w_bits, conv.binary_input = w_bits, quant.bits == 1
    conv.feed_from(quant)
    return conv


class QBlock(nn.Module):
    """A block with its own input quantizer; it takes and returns float activations, so that a
    residual adds the unquantized input as the accelerator's 8-bit add does. With `relu` off
    (the next layer reads 1-2 bit activations) the output keeps its sign."""

    def __init__(self, spec: BlockSpec, c_in: int, relu: bool):
        super().__init__()
        w_bits, a_bits = spec.bits
        self.quant = ActQuant(a_bits, approx_sign=spec.binarizer == "approxsign",
                              threshold_channels=c_in if spec.binarizer == "threshold" else 0)
        if spec.depthwise:  # binary weights cannot be 0: a binary block's depthwise is ternary
            self.dw = _conv(c_in, c_in, spec.kernel, spec.stride, max(w_bits, 2), self.quant,
                            groups=c_in)
            self.mid = ActQuant(a_bits)
            self.pw = _conv(c_in, spec.width, 1, 1, w_bits, self.mid)
        else:
            self.conv = _conv(c_in, spec.width, spec.kernel, spec.stride, w_bits, self.quant)
        self.norm = nn.BatchNorm2d(spec.width) if spec.norm else None
        self.spec, self.relu = spec, relu
        self.proj = None
        if spec.residual and (spec.stride != 1 or c_in != spec.width):
            self.proj = _conv(c_in, spec.width, 1, spec.stride, 8 if spec.shortcut8 else w_bits,
                              self.quant)

    def forward(self, x):
        q = self.quant(x)
        if self.spec.depthwise:
            h = self.dw(q)
            y = self.pw(self.mid(F.relu(h) if self.mid.bits == 8 else h))
        else:
            y = self.conv(q)
        if self.norm is not None:
            y = self.norm(y)
        if self.spec.residual:
            y = y + (self.proj(q) if self.proj is not None else x)
        return F.relu(y) if self.relu else y


def _out_size(n: int, spec: BlockSpec) -> int:
    return (n + 2 * (spec.kernel // 2) - spec.kernel) // spec.stride + 1


class QuantNet(nn.Module):
    def __init__(self, candidate: Candidate, input_shape: tuple[int, int, int], classes: int):
        super().__init__()
        self.candidate = candidate
        self.input_shape = input_shape
        self.ptq = False  # trained without fake quantization: the compiler calibrates scales
        c, h, w = input_shape
        specs = candidate.blocks
        next_bits = [b.bits[1] for b in specs[1:]] + [candidate.classifier_bits[1]]
        blocks = []
        for spec, nb in zip(specs, next_bits):
            blocks.append(QBlock(spec, c, relu=nb == 8))
            c, h, w = spec.width, _out_size(h, spec), _out_size(w, spec)
        self.blocks = nn.ModuleList(blocks)
        self.fc_quant = ActQuant(candidate.classifier_bits[1])
        features = c if candidate.head == "pool" else c * h * w
        self.fc = QLinear(features, classes)
        self.fc.w_bits = candidate.classifier_bits[0]
        self.fc.feed_from(self.fc_quant)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        if self.candidate.head == "pool":
            x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(self.fc_quant(torch.flatten(x, 1)))

    def _weighted(self):
        return [(n, m) for n, m in self.named_modules() if isinstance(m, (QConv2d, QLinear))]

    def quant_spec(self) -> QuantSpec:
        """Bit widths of every layer, keyed by module path, and (after QAT) the trained scale
        of its input; for post-training quantization the compiler calibrates them."""
        layers, scales = {}, {}
        for name, m in self._weighted():
            quant = m.__dict__["_input_quant"]
            layers[name] = LayerBits(m.w_bits, quant.bits)
            scales[name] = quant.scale
        return QuantSpec(layers=layers, act_scales={} if self.ptq else scales)

    @contextlib.contextmanager
    def float_view(self):
        """The same module with fake quantization off: what torch.export hands to TVM. A
        block's learnable thresholds move into the bias of the layer before it (the sign of
        x - tau is the sign of x with tau taken off that bias) for as long as the view lasts."""
        moved = []
        for producer, block in zip(self.blocks, self.blocks[1:]):
            if block.quant.tau is not None:
                last = producer.norm if producer.norm is not None else \
                    (producer.pw if producer.spec.depthwise else producer.conv)
                moved.append((last.bias, last.bias.detach().clone(), block.quant.tau.detach()))
        with torch.no_grad():
            for bias, _, tau in moved:
                bias -= tau
        set_quantization(self, False)
        try:
            yield self.eval()
        finally:
            set_quantization(self, True)
            with torch.no_grad():
                for bias, kept, _ in moved:
                    bias.copy_(kept)

    def size_bits(self) -> int:
        """Weights at their bit width, biases at 32 bits."""
        return sum(m.weight.numel() * m.w_bits + m.bias.numel() * 32 for _, m in self._weighted())


def build_model(candidate: Candidate, input_shape, classes: int, seed: int = 0) -> QuantNet:
    torch.manual_seed(seed)
    return QuantNet(candidate, tuple(input_shape), classes)
