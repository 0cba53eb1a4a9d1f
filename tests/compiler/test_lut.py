"""Element-wise activations through the vector unit's lookup table: every function PyTorch
spells as a chain of element-wise ops of one tensor runs on the accelerator as one layer,
bit-exact with the integer reference on golden and RTL, close to the float model."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compiler import artifacts
from compiler.kinds.lut import Step, lut_table
from compiler.layer_ir import Lut, Output
from compiler.pipeline import compile_model
from tests.compiler.netcheck import every_layer_exact, tracks_float
from hw.config import load_accel_config
from tests.compiler.test_codegen import check

ACTIVATIONS = {
    "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "sigmoid": torch.sigmoid,
    "silu": F.silu, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "tanh": torch.tanh, "elu": F.elu, "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "softplus": F.softplus, "mish": F.mish, "x_plus_relu": lambda x: x + F.relu(x),
}


class _Net(torch.nn.Module):
    def __init__(self, acts, channels=40):
        super().__init__()
        self.acts = acts
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(3 if i == 0 else channels, channels, 3, padding=1)
            for i in range(len(acts)))
        self.fc = torch.nn.Linear(channels * 6 * 6, 10)

    def forward(self, x):
        for conv, act in zip(self.convs, self.acts):
            x = ACTIVATIONS[act](conv(x))
        return self.fc(x.flatten(1))


def _compile(acts, channels=40):
    torch.manual_seed(0)
    model = _Net(acts, channels).eval()
    cal = torch.randn(8, 3, 6, 6)
    return model, cal, compile_model(model, cal[:1], load_accel_config("default"), None,
                                     cal.numpy())


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activation_is_one_table_layer_bit_exact(act):
    model, cal, net = _compile([act, act])
    assert all(p.where == "tta" for p in net.placement), net.placement_report()
    assert sum(type(la).__name__ == "Lut" for la in net.layers) == 2
    assert len(net.program.segments) == 1, net.placement_report()
    every_layer_exact(net, "golden", cal[:2].numpy())
    tracks_float(net, model, cal[:1])


@pytest.mark.rtl
def test_a_network_of_activations_on_the_rtl():
    _, cal, net = _compile(["hardswish", "sigmoid", "gelu", "mish", "elu"], channels=200)
    assert all(p.where == "tta" for p in net.placement), net.placement_report()
    with net.runner("rtl") as acc, net.runner("reference") as ref:
        for x in cal[:2].numpy():
            np.testing.assert_array_equal(acc(x[None]), ref(x[None]))
        assert acc.cycles == sum(b.cycles for b in net.program.layers.values())


@pytest.mark.rtl
@pytest.mark.parametrize("config,channels", [("tiny", 8), ("tiny", 21), ("default", 200)])
def test_table_layer_alone_on_the_rtl(config, channels):
    """A random table over a tensor: the table loads 256 / G rows (32 on tiny, 2 on default),
    every byte maps, estimate = RTL."""
    rng = np.random.default_rng(channels)
    layer = Lut("t", (channels, 5, 3), rng.integers(-128, 128, 256).astype(np.int8), 0.1,
                Output("int8", np.full(channels, 0.05)))
    check([layer], load_accel_config(config), rng, images=2)


def test_the_table_rounds_and_saturates():
    double = (Step("multiply", ("x", 2.0)),)
    table = lut_table(double, 0.5, 0.25)  # y = 2x at in 0.5, out 0.25: q_out = 4 q_in
    q = np.arange(256).astype(np.uint8).view(np.int8).astype(np.int64)
    np.testing.assert_array_equal(table.astype(np.int64), np.clip(4 * q, -128, 127))


def test_a_chain_used_outside_stays_on_the_host_or_splits():
    """sigmoid(x) is also returned: the chain x * sigmoid(x) has a value used outside it, so
    it is not one table (each part on its own may be)."""
    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 1)

        def forward(self, x):
            y = self.conv(x)
            s = torch.sigmoid(y)
            return (y * s).flatten(1).sum(1, keepdim=True) + s.flatten(1).sum(1, keepdim=True)
    cal = torch.randn(4, 3, 4, 4)
    net = compile_model(Two().eval(), cal[:1], load_accel_config("default"), None,
                        cal.numpy())
    luts = [p.op for p in net.placement if p.op.startswith("sigmoid")]
    assert luts and all("multiply" not in op for op in luts), net.placement_report()


def test_a_compiled_directory_with_tables_round_trips(tmp_path):
    _, cal, net = _compile(["hardswish", "sigmoid"])
    again = artifacts.load(artifacts.save(net, tmp_path / "out"))
    with net.runner("golden") as a, again.runner("golden") as b:
        x = cal[:1].numpy()
        np.testing.assert_array_equal(a(x), b(x))
