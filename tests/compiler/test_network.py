"""A trained network through the whole compiler, on the RTL, equals the integer reference."""

import numpy as np
import pytest
import torch

from codesign.evaluate import compile_quantnet
from compiler.errors import CompileError
from compiler.pipeline import compile_model
from hw.config import load_accel_config

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def trained(trained_cnn):
    return trained_cnn


@pytest.fixture(scope="module")
def compiled(trained):
    return compile_quantnet(trained[0], load_accel_config("default"))


def test_rtl_equals_integer_reference_on_test_images(compiled, trained):
    model, data = trained
    rtl, ref = compiled.runner("rtl"), compiled.runner("reference")
    for i in range(24):
        x = data.x_test[i:i + 1]
        logits_rtl, logits_ref = rtl(x), ref(x)
        np.testing.assert_array_equal(logits_rtl, logits_ref)
        assert rtl.int_outputs.keys() == {"blocks.0.conv", "blocks.1.conv", "fc"}
        for name, y in ref.int_outputs.items():
            np.testing.assert_array_equal(rtl.int_outputs[name], y, err_msg=name)
        assert rtl.cycles == sum(b.cycles for b in compiled.program.layers.values())


def test_integer_model_tracks_fake_quant_torch(compiled, trained):
    model, data = trained
    ref = compiled.runner("reference")
    x = data.x_test[:100]
    with torch.no_grad():
        torch_pred = model(torch.from_numpy(x)).argmax(1).numpy()
    int_pred = np.array([np.argmax(ref(x[i:i + 1])) for i in range(len(x))])
    assert (torch_pred == int_pred).mean() >= 0.95


def test_placement_report_names_host_ops(compiled):
    report = compiled.placement_report()
    assert [p.where for p in compiled.placement] == ["tta", "tta", "tta"]
    assert "reshape+matmul+add" in report


class _Mixed(torch.nn.Module):
    """A cumulative sum (no layer kind) between offloaded layers."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.grouped = torch.nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.fc = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = torch.cumsum(self.grouped(x), dim=3)
        return self.fc(torch.flatten(x, 1))


def test_unsupported_ops_run_on_the_host():
    torch.manual_seed(0)
    model = _Mixed().eval()
    cal = np.random.default_rng(1).random((8, 1, 8, 8)).astype(np.float32)
    net = compile_model(model, torch.zeros(1, 1, 8, 8), load_accel_config("default"),
                        calibration=cal)
    where = {p.op: p.where for p in net.placement}
    assert where["cumsum"] == "host" and where["nn.conv2d+add"] == "tta"
    assert [layer.name for layer in net.layers] == ["conv", "grouped", "fc"]
    x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        np.testing.assert_array_equal(rtl(x), ref(x))
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        assert np.max(np.abs(rtl(x) - want)) < 0.1 * np.max(np.abs(want)) + 0.05


def test_spec_entries_must_name_layers():
    model = _Mixed().eval()
    with pytest.raises(CompileError, match="layers fc2 match no layer on the accelerator"):
        compile_model(model, torch.zeros(1, 1, 8, 8), load_accel_config("default"),
                      {"layers": {"fc2": {"weights": 1}}})


def test_a_signal_lost_to_a_low_bit_format_is_named():
    """A ReLU's output binarized is +1 everywhere: the compiler warns, naming the conversion
    before the layer reading it (the first whose output no longer depends on the input);
    with ternary activations the signal survives and nothing is said."""
    import warnings

    from compiler.errors import CompileWarning

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 6 * 6, 4)).eval()
    cal = torch.randn(6, 3, 6, 6)
    config = load_accel_config("default")
    with pytest.warns(CompileWarning, match=r"one output for all 6 calibration inputs: "
                      r"layer convert_0 \(binary values for 2\)"):
        compile_model(model, cal[:1], config, {"layers": {"2": {"weights": 1, "activations": 1}}},
                      cal.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        compile_model(model, cal[:1], config, {"layers": {"2": {"weights": 2, "activations": 2}}},
                      cal.numpy())
