"""The four MLPerf Tiny reference models (mlcommons/tiny, benchmark/training), written in PyTorch
from their published layer lists: batch norm after every conv, ReLU, 'same' padding.

Random weights and batch-norm statistics as if trained; `TINY` names each with its input shape
and the MACs of the published architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _bn(c: int, dims: int = 2) -> nn.Module:
    bn = nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm1d(c)
    with torch.no_grad():  # statistics as if trained
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    return bn


def _conv_bn(cin: int, cout: int, k, stride: int = 1, groups: int = 1) -> nn.Sequential:
    k = (k, k) if isinstance(k, int) else k
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k[0] // 2, k[1] // 2),
                                   groups=groups, bias=False), _bn(cout))


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = _conv_bn(cout, cout, 3)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 else None

    def forward(self, x):
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet8(nn.Module):
    """Image classification (CIFAR-10): 16 / 32 / 64 filters, 12.5 M MACs."""

    input_shape = (3, 32, 32)

    def __init__(self):
        super().__init__()
        self.stem = _conv_bn(3, 16, 3)
        self.stack1 = _ResBlock(16, 16, 1)
        self.stack2 = _ResBlock(16, 32, 2)
        self.stack3 = _ResBlock(32, 64, 2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.stack3(self.stack2(self.stack1(F.relu(self.stem(x)))))
        return self.fc(torch.flatten(F.avg_pool2d(x, 8), 1))


class DSCNN(nn.Module):
    """Keyword spotting (49 x 10 MFCC): a 10 x 4 stride-2 conv with TF 'same' padding (top 4,
    bottom 5, left 1, right 1), four depthwise-separable blocks of 64, 2.66 M MACs."""

    input_shape = (1, 49, 10)

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 64, (10, 4), 2, bias=False), _bn(64))
        blocks = []
        for _ in range(4):
            blocks += [_conv_bn(64, 64, 3, groups=64), nn.ReLU(), _conv_bn(64, 64, 1), nn.ReLU()]
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 12)

    def forward(self, x):
        x = F.relu(self.stem(F.pad(x, (1, 1, 4, 5))))
        x = self.blocks(x)
        return self.fc(torch.flatten(F.avg_pool2d(x, (25, 5)), 1))


class MobileNetV1(nn.Module):
    """Visual wake words (96 x 96 RGB), alpha 0.25: 7.49 M MACs."""

    input_shape = (3, 96, 96)
    BLOCKS = [(1, 16), (2, 32), (1, 32), (2, 64), (1, 64), (2, 128), (1, 128), (1, 128),
              (1, 128), (1, 128), (1, 128), (2, 256), (1, 256)]

    def __init__(self):
        super().__init__()
        self.stem = _conv_bn(3, 8, 3, 2)
        layers, c = [], 8
        for stride, out in self.BLOCKS:
            layers += [_conv_bn(c, c, 3, stride, groups=c), nn.ReLU(), _conv_bn(c, out, 1),
                       nn.ReLU()]
            c = out
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(256, 2)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.avg_pool2d(x, 3), 1))


class AutoEncoder(nn.Module):
    """Anomaly detection (640 log-mel features): dense 128 x4, 8, 128 x4, 640; 0.264 M MACs."""

    input_shape = (640,)

    def __init__(self):
        super().__init__()
        widths = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.bns = nn.ModuleList(_bn(b, 1) for b in widths[1:])
        self.out = nn.Linear(128, 640)

    def forward(self, x):
        for fc, bn in zip(self.hidden, self.bns):
            x = F.relu(bn(fc(x)))
        return self.out(x)


@dataclass(frozen=True)
class TinyModel:
    name: str
    factory: type
    macs: int  # of the published architecture
    mixed: dict  # a mixed-precision spec: low-bit inner layers, 8-bit first and last


# Mixed versions: ternary (ResNet-8, DS-CNN, MobileNet) or binary (autoencoder) weights and
# activations inside, 8-bit where the network reads its input and writes its output.
TINY = [
    TinyModel("resnet8", ResNet8, 12_501_632,
              {"layers": {"stack*.conv*.0": {"weights": 2, "activations": 2},
                          "stack1.conv1.0": {"weights": 2, "activations": 8}}}),
    TinyModel("ds_cnn", DSCNN, 2_656_768,
              {"layers": {"blocks.*": {"weights": 2, "activations": 2}}}),
    TinyModel("mobilenet_v1", MobileNetV1, 7_489_664,
              {"layers": {"blocks.*": {"weights": 2, "activations": 2}}}),
    TinyModel("autoencoder", AutoEncoder, 264_192,
              {"layers": {"hidden.[2-8]": {"weights": 1, "activations": 1},
                          "hidden.1": {"weights": 1, "activations": 8}}}),
]


def build(entry: TinyModel, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return entry.factory().eval()
