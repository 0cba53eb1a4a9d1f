"""Networks the compiler was not written for: random layer stacks with the shapes deployed edge
networks use (stems of 1-3 channels, any kernel shape and stride, dilation, explicit asymmetric
padding, grouped and depthwise convolutions with multipliers, batch norm everywhere, standalone
batch norm, pools with padding and ceil mode, `mean` heads, residual adds, 4..200 channels,
dense heads), each compiled from its `.pt2` and run on the RTL: bit-exact against the integer
reference, nothing on the host."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compiler.errors import MemoryFitError
from compiler.pipeline import compile_model
from hw.config import load_accel_config

pytestmark = pytest.mark.rtl  # each network 2-3 s


def _bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(-1.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    return bn


class _Block(nn.Module):
    def __init__(self, rng: random.Random, c: int):
        super().__init__()
        kind = rng.choice(["conv", "conv", "dw", "grouped", "pad", "pool"])
        kh, kw = rng.choice([(1, 1), (3, 3), (5, 5), (1, 3), (3, 1), (7, 7), (2, 2)])
        stride = rng.choice([1, 1, 2, 3]) if kind != "pool" else rng.choice([1, 2])
        dil = rng.choice([1, 1, 2]) if kind in ("conv", "dw") and kh > 1 else 1
        self.kind, self.pad, self.residual, self.act = kind, None, False, rng.choice(
            ["relu", "relu6", "none"])
        if kind == "pool":  # torchvision's: 2x2 and 3x3, padded, ceil mode (max)
            k = rng.choice([2, 3])
            self.op = nn.MaxPool2d(k, stride, rng.choice([0, k // 2]),
                                   ceil_mode=rng.random() < 0.5) \
                if rng.random() < 0.5 else nn.AvgPool2d(k, stride, rng.choice([0, k // 2]))
            self.out = c
            return
        groups, out = 1, rng.choice([4, 8, 12, 16, 24, 32, 48, 64, 100, 200])
        if kind == "dw":
            groups, out = c, c * rng.choice([1, 1, 2])
        elif kind == "grouped" and c % 2 == 0:
            groups, out = 2, 2 * rng.choice([4, 8, 16])
        if kind == "pad":  # TF 'same' style: explicit asymmetric padding, no conv padding
            self.pad = (rng.randint(0, kw), rng.randint(0, kw), rng.randint(0, kh),
                        rng.randint(0, kh))
            padding = 0
        else:
            padding = (dil * (kh - 1) // 2, dil * (kw - 1) // 2)
        self.op = nn.Conv2d(c, out, (kh, kw), stride, padding, dil, groups,
                            bias=rng.random() < 0.5)
        self.bn = _bn(out) if rng.random() < 0.8 else None
        self.residual = stride == 1 and out == c and rng.random() < 0.5 and kind != "pad"
        self.out = out

    def forward(self, x):
        y = F.pad(x, self.pad) if self.pad else x
        y = self.op(y)
        if self.kind != "pool" and self.bn is not None:
            y = self.bn(y)
        if self.residual and y.shape == x.shape:
            y = y + x
        return {"relu": F.relu, "relu6": F.relu6, "none": lambda t: t}[self.act](y)


class _Net(nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        rng = random.Random(seed)
        self.input_shape = (rng.choice([1, 3, 2]), rng.choice([12, 16, 21]), rng.choice([10, 16]))
        self.pre = _bn(self.input_shape[0]) if rng.random() < 0.3 else None  # standalone BN
        blocks, c, h, w = [], *self.input_shape
        for _ in range(rng.randint(2, 5)):
            block = _Block(rng, c).eval()
            try:
                with torch.no_grad():
                    y = block(torch.zeros(1, c, h, w))
            except RuntimeError:  # the kernel is larger than what is left of the input
                break
            if min(y.shape[2:]) < 1:
                break
            blocks.append(block)
            c, h, w = y.shape[1:]
        self.blocks = nn.ModuleList(blocks)
        self.head = rng.choice(["flatten", "pool", "mean"])
        self.fc = nn.Linear(c * (h * w if self.head == "flatten" else 1), rng.choice([2, 10, 33]))

    def forward(self, x):
        if self.pre is not None:
            x = self.pre(x)
        for block in self.blocks:
            x = block(x)
        if self.head == "mean":  # as MnasNet, ShuffleNetV2: the spatial axes dropped
            return self.fc(x.mean([2, 3]))
        x = torch.flatten(x if self.head == "flatten" else F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


@pytest.mark.parametrize("seed", range(12))
def test_unseen_network_bit_exact_on_the_rtl(tmp_path, seed):
    torch.manual_seed(seed)
    model = _Net(seed).eval()
    shape = model.input_shape
    rng = np.random.default_rng(seed)
    cal = rng.standard_normal((4, *shape)).astype(np.float32)
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(model, (torch.from_numpy(cal[:1]),)), str(path))
    program = torch.export.load(str(path)).module()
    spec = {"layers": {"blocks.1.op": {"weights": rng.choice([1, 2, 8]).item(),
                                       "activations": rng.choice([1, 2, 8]).item()}}} \
        if len(model.blocks) > 1 and model.blocks[1].kind != "pool" else None
    if spec and model.blocks[1].op.groups > 1 and spec["layers"]["blocks.1.op"]["weights"] == 1:
        spec["layers"]["blocks.1.op"]["weights"] = 2  # binary weights cannot be 0
    try:
        net = compile_model(program, torch.from_numpy(cal[:1]), load_accel_config("default"),
                            spec, cal)
    except MemoryFitError as exc:
        pytest.skip(f"does not fit: {exc}")
    assert all(p.where == "tta" for p in net.placement), net.placement_report()
    x = rng.standard_normal((1, *shape)).astype(np.float32)
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        np.testing.assert_array_equal(rtl(x), ref(x))
        for name, y in ref.int_outputs.items():
            np.testing.assert_array_equal(rtl.int_outputs[name], y, err_msg=name)
        assert rtl.cycles == sum(b.cycles for b in net.program.layers.values())
