"""Segmentation networks assembled from blocks: a DeepLabV3-style network (MobileNetV2-like
encoder with dilated blocks, ASPP, a 1x1 classifier, logits upsampled to the input, bilinear)
whose encoder blocks are each one `BlockChoice` (the block-wise search's unit).

Block interfaces stay int8 (a block reads and writes 8-bit activations at the teacher's shapes, so
any candidate of a position fits between the teacher's neighbours); a block's weights and its
inner activations take the choice's bits. Everything runs on the accelerator: dilated and
depthwise convolutions, residual adds, the image-pooling branch, concatenation and upsampling.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codesign.errors import ConfigError
from codesign.quant import ActQuant, QConv2d, set_quantization
from compiler.quantspec import LayerBits, QuantSpec

OPS = ("ir", "fused")  # MobileNetV2's inverted residual; Fused-MBConv (kxk expand, 1x1 project)


@dataclass(frozen=True)
class BlockChoice:
    op: str = "ir"
    expand: int = 4
    kernel: int = 3
    dilation: int = 1
    w_bits: int = 8
    a_bits: int = 8  # the block's inner activations; its input and output stay int8

    def __post_init__(self):
        if self.op not in OPS:
            raise ConfigError(f"block op {self.op!r}; allowed: {', '.join(OPS)}")
        if self.w_bits not in (1, 2, 8) or self.a_bits not in (2, 8):
            raise ConfigError(f"block bits {self.w_bits}/{self.a_bits}: weights 1, 2 or 8; "
                              f"inner activations 2 or 8")
        if self.kernel % 2 == 0 or self.expand < 1 or self.dilation < 1:
            raise ConfigError(f"block {self}: odd kernel, expand >= 1, dilation >= 1")

    @property
    def key(self) -> str:
        return f"{self.op}-e{self.expand}-k{self.kernel}-d{self.dilation}-" \
               f"w{self.w_bits}a{self.a_bits}"

    @classmethod
    def from_key(cls, key: str) -> "BlockChoice":
        try:
            op, e, k, d, bits = key.split("-")
            w, a = bits[1:].split("a")
            return cls(op, int(e[1:]), int(k[1:]), int(d[1:]), int(w), int(a))
        except ValueError:
            raise ConfigError(f"not a block key: {key!r} (like ir-e4-k3-d1-w8a8)") from None


@dataclass(frozen=True)
class Position:
    """One encoder block's place: its input and output channels and stride."""

    cin: int
    cout: int
    stride: int
    teacher: BlockChoice


@dataclass(frozen=True)
class SegArch:
    input_shape: tuple[int, int, int]
    classes: int
    stem: int = 16  # a stride-2 3x3 convolution
    positions: tuple[Position, ...] = ()
    aspp: int = 32
    rates: tuple[int, ...] = (2, 4)
    upsample: str = "bilinear"  # the logits to the input's size: bilinear (DeepLab) or nearest

    @property
    def teacher(self) -> tuple[BlockChoice, ...]:
        return tuple(p.teacher for p in self.positions)

    def feature_shape(self, k: int) -> tuple[int, int, int]:
        """The shape of block k's output (k = -1: the stem's)."""
        _, h, w = self.input_shape
        h, w = -(-h // 2), -(-w // 2)
        c = self.stem
        for p in self.positions[:k + 1]:
            h, w, c = -(-h // p.stride), -(-w // p.stride), p.cout
        return c, h, w


def default_arch(input_shape, classes: int) -> SegArch:
    """Output stride 4: blocks at 1/2 and 1/4 of the input, the last two dilated."""
    t = BlockChoice
    return SegArch(tuple(input_shape), classes, 16, (
        Position(16, 16, 1, t("ir", 1, 3, 1)), Position(16, 24, 2, t("ir", 4, 3, 1)),
        Position(24, 24, 1, t("ir", 4, 3, 2)), Position(24, 32, 1, t("ir", 4, 3, 2))))


def _conv(cin, cout, k, w_bits, quant: ActQuant, stride=1, dilation=1, groups=1) -> QConv2d:
    conv = QConv2d(cin, cout, k, stride, dilation * (k // 2), dilation, groups, bias=False)
    conv.w_bits = w_bits
    conv.feed_from(quant)
    return conv


class SegBlock(nn.Module):
    """One encoder block from its choice; a residual add when the shapes allow."""

    def __init__(self, pos: Position, choice: BlockChoice):
        super().__init__()
        self.choice, c = choice, choice
        mid = pos.cin * c.expand
        dw_bits = max(c.w_bits, 2)  # a depthwise filter of +-1 only cannot pass a value
        self.q_in = ActQuant(8)
        layers: list[nn.Module] = []
        if c.op == "ir":
            q = self.q_in
            if c.expand > 1:
                layers += [_conv(pos.cin, mid, 1, c.w_bits, q), nn.BatchNorm2d(mid), nn.ReLU6()]
                q = ActQuant(c.a_bits)
                layers.append(q)
            layers += [_conv(mid, mid, c.kernel, dw_bits, q, pos.stride, c.dilation, mid),
                       nn.BatchNorm2d(mid), nn.ReLU6()]
        else:
            layers += [_conv(pos.cin, mid, c.kernel, c.w_bits, self.q_in, pos.stride,
                             c.dilation), nn.BatchNorm2d(mid), nn.ReLU6()]
        q = ActQuant(c.a_bits)
        layers += [q, _conv(mid, pos.cout, 1, c.w_bits, q), nn.BatchNorm2d(pos.cout)]
        self.body = nn.Sequential(*layers)
        self.residual = pos.stride == 1 and pos.cin == pos.cout

    def forward(self, x):
        y = self.body(self.q_in(x))
        return x + y if self.residual else y


class SegNet(nn.Module):
    """Stem, encoder blocks, ASPP (1x1, dilated 3x3 and image-pooling branches, concatenated,
    projected), classifier, upsampling to the input's size. 8-bit outside the blocks."""

    def __init__(self, arch: SegArch, choices: tuple[BlockChoice, ...] | None = None):
        super().__init__()
        choices = tuple(choices or arch.teacher)
        if len(choices) != len(arch.positions):
            raise ConfigError(f"{len(choices)} block choices for {len(arch.positions)} positions")
        self.arch, self.choices = arch, choices
        self.ptq = False
        cin = arch.input_shape[0]
        self.q_stem = ActQuant(8)
        self.stem = nn.Sequential(_conv(cin, arch.stem, 3, 8, self.q_stem, 2),
                                  nn.BatchNorm2d(arch.stem), nn.ReLU6())
        self.blocks = nn.ModuleList(SegBlock(p, c) for p, c in zip(arch.positions, choices))
        c, a = arch.positions[-1].cout if arch.positions else arch.stem, arch.aspp
        self.q_aspp, self.q_pool = ActQuant(8), ActQuant(8)

        def branch(k, r, q):
            return nn.Sequential(_conv(c, a, k, 8, q, dilation=r), nn.BatchNorm2d(a), nn.ReLU())
        self.branches = nn.ModuleList([branch(1, 1, self.q_aspp)] +
                                      [branch(3, r, self.q_aspp) for r in arch.rates])
        self.image = branch(1, 1, self.q_pool)
        self.q_cat = ActQuant(8)
        n = len(arch.rates) + 2
        self.project = nn.Sequential(_conv(n * a, a, 1, 8, self.q_cat), nn.BatchNorm2d(a),
                                     nn.ReLU())
        self.q_head = ActQuant(8)
        self.head = QConv2d(a, arch.classes, 1)
        self.head.feed_from(self.q_head)

    @property
    def input_shape(self):
        return self.arch.input_shape

    def encode(self, x, upto: int | None = None) -> list[torch.Tensor]:
        """The stem's output and every block's (up to block `upto`)."""
        feats = [self.stem(self.q_stem(x))]
        for k, block in enumerate(self.blocks):
            if upto is not None and k > upto:
                break
            feats.append(block(feats[-1]))
        return feats

    def decode(self, f):
        x = self.q_aspp(f)
        pooled = self.image(self.q_pool(torch.mean(f, dim=(2, 3), keepdim=True)))
        parts = [b(x) for b in self.branches] + \
            [F.interpolate(pooled, size=f.shape[2:], mode="nearest")]
        y = self.head(self.q_head(self.project(self.q_cat(torch.cat(parts, 1)))))
        if self.arch.upsample == "nearest":
            return F.interpolate(y, size=self.arch.input_shape[1:], mode="nearest")
        return F.interpolate(y, size=self.arch.input_shape[1:], mode="bilinear",
                             align_corners=False)

    def forward(self, x):
        return self.decode(self.encode(x)[-1])

    def _weighted(self):
        return [(n, m) for n, m in self.named_modules() if isinstance(m, QConv2d)]

    def quant_spec(self) -> QuantSpec:
        """Bits of every conv by module path; trained input scales after QAT (else the
        compiler calibrates)."""
        layers, scales = {}, {}
        for name, m in self._weighted():
            quant = m.__dict__["_input_quant"]
            layers[name] = LayerBits(m.w_bits, quant.bits)
            if quant.bits < 8:  # low-bit inputs: the trained scale; int8: calibrated
                scales[name] = quant.scale
        return QuantSpec(layers=layers, act_scales={} if self.ptq else scales)

    @contextlib.contextmanager
    def float_view(self):
        set_quantization(self, False)
        try:
            yield self.eval()
        finally:
            set_quantization(self, True)

    def size_bits(self) -> int:
        return sum(m.weight.numel() * m.w_bits + (m.bias.numel() * 32 if m.bias is not None
                                                  else 0) for _, m in self._weighted())


def block_module(pos: Position, choice: BlockChoice) -> nn.Module:
    """A block alone (its cost on the accelerator is measured this way)."""
    return SegBlock(pos, choice)
