"""The MLPerf Tiny reference models (bench/tiny_models.py), saved with torch.export as a user
would and compiled from the `.pt2`: nothing on the host between input and output, every layer's
integer output bit-exact on the RTL against the numpy reference on random inputs, the
estimator's counters identical to the RTL's, int8 and mixed precision."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from compiler.artifacts import load_model
from compiler.estimate import estimate
from compiler.pipeline import compile_model
from hw.config import load_accel_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from tiny_models import TINY, build  # noqa: E402

pytestmark = [pytest.mark.rtl, pytest.mark.slow]

# What the accelerator must reach end to end on 'default', int8 (utilization of the int8 peak).
FLOOR = {"resnet8": 0.70, "ds_cnn": 0.60, "mobilenet_v1": 0.50, "autoencoder": 0.50}


@pytest.mark.parametrize("version", ["int8", "mixed"])
@pytest.mark.parametrize("entry", TINY, ids=[e.name for e in TINY])
def test_tiny_model_from_pt2_on_the_rtl(tmp_path, entry, version):
    rng = np.random.default_rng(1)
    model = build(entry)
    cal = rng.standard_normal((4, *model.input_shape)).astype(np.float32)
    path = tmp_path / f"{entry.name}.pt2"
    torch.export.save(torch.export.export(model, (torch.from_numpy(cal[:1]),)), str(path))
    loaded, shape = load_model(str(path))
    config = load_accel_config("default")
    net = compile_model(loaded, torch.from_numpy(cal[:1]), config,
                        entry.mixed if version == "mixed" else None, cal)
    assert all(p.where == "tta" for p in net.placement), net.placement_report()
    x = rng.standard_normal((1, *shape)).astype(np.float32)
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        np.testing.assert_array_equal(rtl(x), ref(x))
        for name, y in ref.int_outputs.items():
            np.testing.assert_array_equal(rtl.int_outputs[name], y, err_msg=name)
        est = estimate(net.program)
        for run in rtl.layer_runs:
            assert run.counters == est[run.name], run.name
    if version == "int8":
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        with net.runner("reference") as ref:
            got = ref(x)
        assert np.linalg.norm(got - want) < 0.1 * np.linalg.norm(want)
        est = estimate(net.program)
        cycles = sum(c["cycles"] for c in est.values())
        waits = sum(c["dma_stall_cycles"] for c in est.values())  # constants loaded off-chip
        # the kernels' utilization: without the layers' hand-over copies (counted in the
        # cycles, reported by bench-tiny end to end)
        hand = sum(b.tiling.get("handover_cycles", 0) for b in net.program.layers.values())
        util = net_macs(net) / ((cycles - waits - hand) * config.lanes)
        assert util >= FLOOR[entry.name], f"{entry.name}: {util:.3f}"
        # only the autoencoder's int8 weights (258 KiB) exceed the 256 KiB data memory;
        # MobileNetV1's fit, but leave its early layers in row tiles, each window and tile
        # going through the off-chip memory: streaming its constants instead is faster (and
        # takes less energy), and the whole network then runs at once
        assert bool(net.program.offchip) == (entry.name in ("autoencoder", "mobilenet_v1"))
        if entry.name == "mobilenet_v1":
            assert len(net.program.segments) == 1 and \
                all(b.tiles == 1 for b in net.program.layers.values())


def net_macs(net) -> int:
    return sum(b.macs for b in net.program.layers.values())
