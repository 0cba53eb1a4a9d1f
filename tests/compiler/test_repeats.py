"""Blocks that repeat one shape (residual adds, concatenations, pools): Relax shares one function
between structurally equal regions, yet every call site is a layer of its own — its own name,
its own code, its own place in the run — and the compiled directory round-trips."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compiler import artifacts
from compiler.kinds import CODEGEN
from compiler.pipeline import compile_model
from hw.config import load_accel_config

pytestmark = pytest.mark.rtl


class TwoAdds(nn.Module):
    """The smallest reproduction: two residual adds of one shape."""

    def __init__(self):
        super().__init__()
        self.c0, self.c1, self.c2 = (nn.Conv2d(a, 8, 3, padding=1) for a in (1, 8, 8))
        self.fc = nn.Linear(8 * 64, 10)

    def forward(self, x):
        x = self.c0(x)
        x = x + self.c1(x)
        x = x + self.c2(x)
        return self.fc(torch.flatten(x, 1))


class Fire(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.squeeze = nn.Conv2d(c, 4, 1)
        self.e1, self.e3 = nn.Conv2d(4, c // 2, 1), nn.Conv2d(4, c // 2, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(x)), F.relu(self.e3(x))], 1)


class Repeats(nn.Module):
    """A random stack of blocks that keep their shape (residual convs, fire modules with equal
    concatenations, pools of one size), so that several call sites share one Relax function."""

    def __init__(self, seed: int):
        super().__init__()
        rng = random.Random(seed)
        self.c = rng.choice([8, 16])
        self.stem = nn.Conv2d(3, self.c, 3, padding=1)
        self.kinds = [rng.choice(["res", "fire", "pool"]) for _ in range(rng.randint(3, 6))]
        self.blocks = nn.ModuleList(
            nn.Conv2d(self.c, self.c, 3, padding=1) if k == "res" else
            Fire(self.c) if k == "fire" else nn.MaxPool2d(3, 1, 1) for k in self.kinds)
        self.fc = nn.Linear(self.c * 64, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        for kind, block in zip(self.kinds, self.blocks):
            x = x + F.relu(block(x)) if kind == "res" else block(x)
        return self.fc(torch.flatten(x, 1))


def _check(model: nn.Module, shape, tmp_path):
    torch.manual_seed(0)
    cal = torch.randn(4, *shape)
    net = compile_model(model, cal[:1], load_accel_config("default"), None, cal.numpy())
    names = [layer.name for layer in net.layers]
    offloaded = [p for p in net.placement if p.where == CODEGEN]
    assert len(set(names)) == len(names) == len(offloaded), names
    assert all(p.where == CODEGEN for p in net.placement), net.placement_report()
    assert len(net.program.segments) == 1, net.placement_report()
    x = cal[1:2].numpy()
    with torch.no_grad():
        want = model(cal[1:2]).numpy().ravel()
    again = artifacts.load(artifacts.save(net, tmp_path / "c"))
    assert [layer.name for layer in again.layers] == names
    with net.runner("rtl") as rtl, net.runner("reference") as ref, \
            again.runner("reference") as loaded:
        y = rtl(x)
        np.testing.assert_array_equal(y, ref(x))
        np.testing.assert_array_equal(y, loaded(x))
        assert set(rtl.int_outputs) == set(names)
        assert rtl.cycles == sum(b.cycles for b in net.program.layers.values())
    # the answer of the model, not only of the compiled layers: a layer reading another call
    # site's output would agree bit for bit with its own reference and still be wrong
    assert np.corrcoef(y.ravel(), want)[0, 1] > 0.99


def test_two_residual_adds_of_one_shape(tmp_path):
    torch.manual_seed(1)
    _check(TwoAdds().eval(), (1, 8, 8), tmp_path)


@pytest.mark.parametrize("seed", range(4))
def test_repeated_blocks_of_one_shape(tmp_path, seed):
    torch.manual_seed(seed)
    model = Repeats(seed).eval()
    assert len(set(model.kinds)) < len(model.kinds)  # something repeats
    _check(model, (3, 8, 8), tmp_path)
