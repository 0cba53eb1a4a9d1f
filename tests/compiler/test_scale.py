"""Squeeze-and-excitation on the accelerator: a global pool, two 1x1 convolutions, a gate
(sigmoid or hardsigmoid through the lookup table) and the feature map times the gate per
channel (`Scale`: the gate's rows as the element-wise MAC's weights), in one run, bit-exact."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compiler.codegen import compile_layers
from compiler.executor import get_backend
from compiler.intsem import Requant
from compiler.layer_ir import Output, Scale
from compiler.pipeline import compile_model
from tests.compiler.netcheck import every_layer_exact, tracks_float
from hw.config import load_accel_config

pytestmark = pytest.mark.rtl


class _SE(torch.nn.Module):
    def __init__(self, c: int, gate, vector_first: bool):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, c, 3, padding=1)
        self.fc1 = torch.nn.Conv2d(c, max(1, c // 4), 1)
        self.fc2 = torch.nn.Conv2d(max(1, c // 4), c, 1)
        self.gate, self.vector_first = gate, vector_first
        self.head = torch.nn.Linear(c, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        g = self.gate(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        x = g * x if self.vector_first else x * g
        return self.head(x.mean([2, 3]))


@pytest.mark.parametrize("config,c,gate,vector_first", [
    ("default", 40, torch.sigmoid, True), ("default", 300, F.hardsigmoid, False),
    ("tiny", 21, torch.sigmoid, False), ("default", 8, F.hardsigmoid, True)])
def test_squeeze_and_excitation_in_one_run(config, c, gate, vector_first):
    torch.manual_seed(c)
    model = _SE(c, gate, vector_first).eval()
    cal = torch.randn(8, 3, 6, 6)
    net = compile_model(model, cal[:1], load_accel_config(config), None, cal.numpy())
    assert all(p.where == "tta" for p in net.placement), net.placement_report()
    assert len(net.program.segments) == 1, net.placement_report()
    cycles, _ = every_layer_exact(net, "rtl", cal[:2].numpy())
    assert cycles == sum(b.cycles for b in net.program.layers.values())
    tracks_float(net, model, cal[:1])


@pytest.mark.parametrize("config,c", [("tiny", 4), ("tiny", 13), ("default", 129),
                                      ("default", 1152)])
def test_scale_alone_on_random_values(config, c):
    """Below G channels the vector is repeated across its row first; above, a position spans
    several rows, each its own MAC and rq."""
    cfg = load_accel_config(config)
    rng = np.random.default_rng(c)
    layer = Scale("s", (c, 3, 5), 0.1, 0.01, Output(
        "int8", np.full(c, 0.02), requant=Requant.from_scale(0.1 * 0.01 / 0.02)))
    compiled = compile_layers([layer], cfg)
    x = rng.integers(-128, 128, (c, 3, 5)).astype(np.int8)
    s = rng.integers(-128, 128, (c, 1, 1)).astype(np.int8)
    (ref, _), (gold, g), (rtl, r) = (get_backend(n, compiled).run("s", x, s)
                                     for n in ("reference", "golden", "rtl"))
    np.testing.assert_array_equal(gold, ref)
    np.testing.assert_array_equal(rtl, ref)
    assert g.cycles == r.cycles == compiled.layers["s"].cycles
