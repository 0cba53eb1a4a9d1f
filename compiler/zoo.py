"""The network zoo: small versions of the architectures the accelerator must run, and random
candidates like the search proposes (tests, benchmarks and the fidelity report use them).

Each entry: a factory of the float model (random weights, batch norms with random statistics),
its input shape, and its quantization spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def _bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():  # statistics as if trained, scales of both signs
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(-1.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    return bn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(144, 64), nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2 = nn.Linear(16 * 4 * 4, 120), nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class VGG(nn.Module):
    """3x3 convolutions with batch norm, strided downsampling, dilation, global pooling."""

    def __init__(self):
        super().__init__()
        spec = [(3, 16, 1, 1), (16, 32, 2, 1), (32, 32, 1, 2), (32, 64, 2, 1)]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, s, padding=d, dilation=d, bias=False)
                                   for i, o, s, d in spec)
        self.bns = nn.ModuleList(_bn(o) for _, o, _, _ in spec)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns):
            x = F.relu(bn(conv(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _bn(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet8(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn = _bn(16)
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.layer3 = BasicBlock(32, 64, 2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class MobileNet(nn.Module):
    """Depthwise-separable blocks (depthwise 3x3 + ReLU6, pointwise 1x1)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn = _bn(16)
        blocks = []
        for cin, cout, stride in [(16, 32, 1), (32, 64, 2), (64, 64, 1)]:
            blocks += [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), _bn(cin),
                       nn.ReLU6(), nn.Conv2d(cin, cout, 1, bias=False), _bn(cout), nn.ReLU6()]
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64 * 4 * 4, 10)

    def forward(self, x):
        x = self.blocks(F.relu6(self.bn(self.stem(x))))
        return self.fc(torch.flatten(F.avg_pool2d(x, 2), 1))


class LowBitNet(nn.Module):
    """8-bit first and last layers around low-bit convolutions with batch norm (no ReLU:
    the batch norm's shift sets the sign threshold of the next binary/ternary input)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.conv0 = nn.Conv2d(1, width, 3, 1, 1)
        self.bn0 = _bn(width)
        self.body1 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn1 = _bn(width)
        self.body2 = nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False)
        self.bn2 = _bn(2 * width)
        self.body3 = nn.Conv2d(2 * width, 2 * width, 3, 1, 1, bias=False)
        self.bn3 = _bn(2 * width)
        self.fc = nn.Linear(2 * width * 6 * 6, 10)

    def forward(self, x):
        x = self.bn0(self.conv0(x))
        x = self.bn1(self.body1(x))
        x = self.bn2(self.body2(x))
        x = F.max_pool2d(F.relu(self.bn3(self.body3(x))), 1)
        return self.fc(torch.flatten(x, 1))


class DilatedVGG(nn.Module):
    """Segmentation by dilated 3x3 convolutions (the virtual-hardware seed's DilatedVGG, small):
    one downsampling, context from dilation 2 and 4, per-pixel logits upsampled back."""

    def __init__(self, classes: int = 11):
        super().__init__()
        spec = [(1, 16, 1, 1), (16, 32, 2, 1), (32, 32, 1, 2), (32, 32, 1, 4)]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, s, padding=d, dilation=d, bias=False)
                                   for i, o, s, d in spec)
        self.bns = nn.ModuleList(_bn(o) for _, o, _, _ in spec)
        self.head = nn.Conv2d(32, classes, 1)

    def forward(self, x):
        size = x.shape[2:]
        for conv, bn in zip(self.convs, self.bns):
            x = F.relu(bn(conv(x)))
        return F.interpolate(self.head(x), size=size, mode="nearest")


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, depthwise 3x3 (strided or dilated), 1x1 projection,
    a residual add when shapes allow."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        mid = cin * expand
        self.expand = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), _bn(mid), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(mid, mid, 3, stride, dilation, dilation, groups=mid,
                                          bias=False), _bn(mid), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), _bn(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, dilated 3x3 branches and the image's mean,
    concatenated and projected."""

    def __init__(self, cin: int, width: int, rates=(2, 4)):
        super().__init__()
        self.branches = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(cin, width, 1, bias=False), _bn(width), nn.ReLU())] +
            [nn.Sequential(nn.Conv2d(cin, width, 3, 1, r, r, bias=False), _bn(width), nn.ReLU())
             for r in rates])
        self.image = nn.Sequential(nn.Conv2d(cin, width, 1, bias=False), _bn(width), nn.ReLU())
        self.project = nn.Sequential(nn.Conv2d(width * (len(rates) + 2), width, 1, bias=False),
                                     _bn(width), nn.ReLU())

    def forward(self, x):
        pooled = self.image(torch.mean(x, dim=(2, 3), keepdim=True))
        parts = [b(x) for b in self.branches] + \
            [F.interpolate(pooled, size=x.shape[2:], mode="nearest")]
        return self.project(torch.cat(parts, 1))


class DeepLabTiny(nn.Module):
    """DeepLabV3-style: a MobileNetV2-like encoder (output stride 4, dilated last blocks), ASPP,
    a 1x1 classifier, logits upsampled to the input's size (bilinear)."""

    def __init__(self, classes: int = 11, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 2, 1, bias=False), _bn(16),
                                  nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(16, 16, 1), InvertedResidual(16, 24, 4, 2),
                                    InvertedResidual(24, 24, 4, dilation=2),
                                    InvertedResidual(24, 32, 4, dilation=2))
        self.aspp = ASPP(32, 32)
        self.head = nn.Conv2d(32, classes, 1)

    def forward(self, x):
        size = x.shape[2:]
        y = self.head(self.aspp(self.blocks(self.stem(x))))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: type
    input_shape: tuple[int, int, int]
    quant: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TfliteEntry:
    """An int8 TFLite model of the project's (models/): compiled as it is."""

    name: str
    path: Path


TFLITE_MODELS = Path(__file__).resolve().parents[1] / "models" / "mlperf-tiny"
TFLITE_ZOO = [TfliteEntry(f"tflite-{name}", TFLITE_MODELS / file) for name, file in (
    ("resnet8", "pretrainedResnet_quant.tflite"), ("ds_cnn", "kws_ref_model.tflite"),
    ("mobilenet_v1", "vww_96_int8.tflite"), ("autoencoder", "ad01_int8.tflite"))]


ZOO = [
    ZooEntry("mlp", MLP, (1, 12, 12)),
    ZooEntry("lenet", LeNet, (1, 28, 28)),
    ZooEntry("vgg", VGG, (3, 16, 16)),
    ZooEntry("resnet8", ResNet8, (1, 28, 28)),
    ZooEntry("mobilenet", MobileNet, (3, 32, 32)),
    ZooEntry("binary", LowBitNet, (1, 12, 12),
             {"layers": {"body*": {"weights": 1, "activations": 1}}}),
    ZooEntry("ternary", LowBitNet, (1, 12, 12),
             {"layers": {"body*": {"weights": 2, "activations": 2}}}),
    ZooEntry("mixed", LowBitNet, (1, 12, 12),
             {"layers": {"body1": {"weights": 2, "activations": 8},
                         "body2": {"weights": 1, "activations": 2},
                         "body3": {"weights": 8, "activations": 1},
                         "fc": {"weights": 2, "activations": 8}}}),
    ZooEntry("mixed_resnet8", ResNet8, (1, 28, 28),
             {"layers": {"layer1.*": {"weights": 2, "activations": 8},
                         "layer2.conv2": {"weights": 1, "activations": 1},
                         "layer3.conv*": {"weights": 2, "activations": 2}}}),
    ZooEntry("dilated_vgg", DilatedVGG, (1, 32, 32)),
    ZooEntry("mixed_dilated_vgg", DilatedVGG, (1, 32, 32),
             {"layers": {"convs.1": {"weights": 2, "activations": 8},
                         "convs.2": {"weights": 2, "activations": 2},
                         "convs.3": {"weights": 1, "activations": 8}}}),
    ZooEntry("deeplab", DeepLabTiny, (3, 32, 32)),
]


def build(entry: ZooEntry, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return entry.factory().eval()


class RandomNet(nn.Module):
    """A random candidate: conv blocks (width, kernel, stride, optional residual), batch norm,
    ReLU, pooling, then a classifier."""

    def __init__(self, blocks, in_channels: int, pool: str):
        super().__init__()
        self.convs, self.bns, self.residual = nn.ModuleList(), nn.ModuleList(), []
        c = in_channels
        for width, kernel, stride, residual in blocks:
            residual = residual and stride == 1 and width == c
            self.convs.append(nn.Conv2d(c, width, kernel, stride, kernel // 2, bias=False))
            self.bns.append(_bn(width))
            self.residual.append(residual)
            c = width
        self.pool = pool
        self.fc = nn.LazyLinear(10)

    def forward(self, x):
        for conv, bn, residual in zip(self.convs, self.bns, self.residual):
            y = bn(conv(x))
            x = F.relu(y + x) if residual else F.relu(y)
        x = F.max_pool2d(x, 2) if self.pool == "max" else F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


def random_entry(seed: int) -> ZooEntry:
    """A random network and mixed-precision spec from a search-space-like distribution."""
    import random

    rng = random.Random(seed)
    shape = rng.choice([(1, 12, 12), (1, 16, 16), (3, 16, 16)])
    blocks = [(rng.choice([8, 16, 32, 48]), rng.choice([1, 3, 5]), rng.choice([1, 1, 2]),
               rng.random() < 0.4) for _ in range(rng.randint(1, 4))]
    pool = rng.choice(["max", "avg"])
    layers = {}
    for i in range(1, len(blocks)):
        w, a = rng.choice([(8, 8), (2, 8), (1, 8), (2, 2), (1, 1), (8, 2)])
        layers[f"convs.{i}"] = {"weights": w, "activations": a}

    def factory(blocks=blocks, c=shape[0], pool=pool):
        model = RandomNet(blocks, c, pool)
        model(torch.zeros(1, *shape))  # materialize the lazy classifier
        return model

    return ZooEntry(f"random{seed}", factory, shape, {"layers": layers})
