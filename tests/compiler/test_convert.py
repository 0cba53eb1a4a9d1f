"""Format changes between layers on the accelerator (compiler/convert.py and the formats of
compiler/lower.py): an add, a pooling or a tensor read at two bit widths before 1-2 bit
inputs gets a `convert` layer; a hardtanh before binary inputs keeps its sign; ternary values
read as bytes by an 8-bit-weight layer are an int8 output clipped to +-1, binary values read
as 2-bit codes by a ternary-weight layer a ternary output of threshold -1. Each network is
one accelerator run, every layer bit-exact on the RTL."""

import numpy as np
import pytest
import torch
from torch import nn

from compiler.pipeline import compile_model
from tests.compiler.netcheck import every_layer_exact
from hw.config import load_accel_config

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


class _TwoWidths(nn.Module):
    """x read by a ternary convolution and by the residual add (int8)."""

    def __init__(self):
        super().__init__()
        self.stem, self.body = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return self.fc(torch.flatten(torch.relu(self.body(x) + x), 1))


class _PoolHead(nn.Module):
    """A global average pooling before a ternary classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1, stride=2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(
            torch.relu(self.stem(x)), 1), 1))


class _AddToBinary(nn.Module):
    """An add of two convolutions before a binary convolution."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.a, self.b = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.body = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return self.fc(torch.flatten(self.body(self.a(x) + self.b(x)), 1))


class _Chain(nn.Module):
    """conv -> activation -> conv -> classifier."""

    def __init__(self, act: nn.Module):
        super().__init__()
        self.stem, self.act = nn.Conv2d(1, 8, 3, padding=1), act
        self.body = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.body(self.act(self.stem(x))), 1))


class _TwoStorages(nn.Module):
    """Binary values read packed (binary weights) and as 2-bit codes (ternary weights)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.a, self.b = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        x = self.stem(x)
        return self.fc(torch.flatten(torch.relu(self.a(x) + self.b(x)), 1))


def _spec(**layers):
    return {"default": {"weights": 8, "activations": 8},
            "layers": {n: {"weights": w, "activations": a} for n, (w, a) in layers.items()}}


CASES = {
    "two-widths": (_TwoWidths, _spec(body=(2, 2)), 1),
    "pool-head": (_PoolHead, _spec(fc=(2, 2)), 1),
    "add-to-binary": (_AddToBinary, _spec(body=(1, 1)), 1),
    "hardtanh-binary": (lambda: _Chain(nn.Hardtanh()), _spec(body=(1, 1)), 0),
    "ternary-bytes": (lambda: _Chain(nn.ReLU6()), _spec(body=(8, 2)), 0),
    "binary-codes": (lambda: _Chain(nn.Identity()), _spec(body=(2, 1)), 0),
    "two-storages": (_TwoStorages, _spec(a=(1, 1), b=(2, 1)), 2),
}


@pytest.mark.parametrize("case", CASES)
def test_a_format_change_between_layers_stays_in_the_run(case):
    factory, spec, converts = CASES[case]
    torch.manual_seed(len(case))
    model = factory().eval()
    cal = torch.randn(8, 1, 8, 8)
    net = compile_model(model, cal[:1], load_accel_config("default"), spec, cal.numpy())
    assert len(net.program.segments) == 1, net.placement_report()
    assert all(p.where == "tta" for p in net.placement
               if p.op not in ("reshape", "flatten")), net.placement_report()
    assert sum(layer.name.startswith("convert") for layer in net.layers) == converts
    _, outputs = every_layer_exact(net, "rtl", cal[:3].numpy())
    assert len({y.tobytes() for y in outputs}) == 3  # the signal passes the format change


def test_ternary_values_read_as_bytes_are_an_int8_output_clipped_to_one():
    torch.manual_seed(0)
    cal = torch.randn(8, 1, 8, 8)
    net = compile_model(_Chain(nn.ReLU()).eval(), cal[:1], load_accel_config("default"),
                        _spec(body=(8, 2)), cal.numpy())
    stem = next(layer for layer in net.layers if layer.name == "stem")
    body = next(layer for layer in net.layers if layer.name == "body")
    assert stem.out.kind == "int8" and (stem.out.requant.lo, stem.out.requant.hi) == (0, 1)
    assert np.all(stem.out.scale == body.in_scale) and body.a_bits == 2


def test_conversions_survive_saving_and_loading(tmp_path):
    """A compiled directory stores the float network before partitioning; loading it
    partitions again and inserts the same conversions (layers.json lists them)."""
    from compiler.artifacts import load, save
    factory, spec, _ = CASES["two-widths"]
    torch.manual_seed(1)
    cal = torch.randn(8, 1, 8, 8)
    net = compile_model(factory().eval(), cal[:1], load_accel_config("default"), spec,
                        cal.numpy())
    again = load(save(net, tmp_path / "c"))
    assert [la.name for la in again.layers] == [la.name for la in net.layers]
    with again.runner("golden") as a, net.runner("reference") as r:
        for x in cal[:3].numpy():
            np.testing.assert_array_equal(a(x[None]), r(x[None]))
