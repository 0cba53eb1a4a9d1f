"""The evaluation service: `codesign evaluate` figures, the estimator against the RTL, the cache."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from codesign.evalcache import EvalCache
from codesign.fidelity import measure
from codesign.hwcost import network_cost
from codesign.metrics import Metrics
from compiler.pipeline import compile_model
from compiler.zoo import ZOO, build, random_entry
from hw.config import load_accel_config
from tests.clirun import run

pytestmark = pytest.mark.rtl

MODEL_PY = '''
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    input_shape = (1, 10, 10)

    def __init__(self, width=16):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.body = nn.Conv2d(width, width, 3, padding=1)
        self.fc = nn.Linear(width * 5 * 5, 4)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = F.max_pool2d(F.relu(self.body(x)) + x, 2)
        return self.fc(torch.flatten(x, 1))


def Wide():
    return Net(32)
'''


def evaluate(*args):
    return run("evaluate", *args)


def test_evaluate_writes_the_figures_and_hits_the_cache(tmp_path):
    (tmp_path / "net.py").write_text(MODEL_PY)
    args = [f"{tmp_path}/net.py:Net", "--fidelity", "both", "--json", str(tmp_path / "e.json"),
            "--cache", str(tmp_path / "cache.sqlite")]
    out = evaluate(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    first = json.loads((tmp_path / "e.json").read_text())
    assert {"cycles", "latency_s", "energy_j", "size_bits", "layers", "estimate_cycles",
            "rtl_cycles"} <= set(first)
    assert [x["name"] for x in first["layers"]] == ["conv", "body", "add_0", "max_pool_0", "fc"]
    for layer in first["layers"]:
        assert {"name", "cycles", "energy_j", "placement", "estimate_cycles", "rtl_cycles"} \
            <= set(layer) and layer["placement"] == "tta" and layer["energy_j"] > 0
    assert first["cycles"] == first["rtl_cycles"] == sum(x["cycles"] for x in first["layers"])
    assert first["size_bits"] == (16 * 9 + 16 * 16 * 9 + 4 * 400) * 8 + (16 + 16 + 4) * 32
    assert abs(first["latency_s"] - first["cycles"] / 300e6) < 1e-12
    assert (tmp_path / "e.png").stat().st_size > 1000
    out = evaluate(*args)
    assert out.returncode == 0 and "evaluation cache hit" in out.stdout
    assert json.loads((tmp_path / "e.json").read_text()) == first
    out = evaluate(*args, "--no-cache")
    assert out.returncode == 0 and "cache hit" not in out.stdout


@pytest.mark.slow
def test_two_processes_evaluate_at_once(tmp_path):
    (tmp_path / "net.py").write_text(MODEL_PY)
    procs = [subprocess.Popen([sys.executable, "-m", "codesign", "evaluate",
                               f"{tmp_path}/net.py:{name}", "--fidelity", "estimate",
                               "--json", str(tmp_path / f"{name}.json"),
                               "--cache", str(tmp_path / "cache.sqlite")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("Net", "Wide")]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, out + err
    cache = EvalCache(tmp_path / "cache.sqlite")
    assert cache.db.execute("SELECT COUNT(*) FROM costs").fetchone()[0] == 2
    cache.close()


def test_cache_round_trip_is_identical(tmp_path):
    entry = next(e for e in ZOO if e.name == "lenet")
    cal = np.random.default_rng(0).standard_normal((4, *entry.input_shape)).astype(np.float32)
    net = compile_model(build(entry), torch.from_numpy(cal[:1]), load_accel_config("default"),
                        entry.quant, cal)
    cost = network_cost(net, "both", cal[:1])
    cache = EvalCache(tmp_path / "c.sqlite")
    cache.put("key", cost.as_dict())
    assert Metrics.from_dict(cache.get("key")) == cost
    assert cache.get("other") is None
    cache.close()


@pytest.mark.parametrize("entry", [ZOO[1], ZOO[3], ZOO[7], random_entry(1), random_entry(2)],
                         ids=lambda e: e.name)
def test_the_estimator_counts_what_the_rtl_counts(entry):
    """Every event counter of every layer identical (so cycles and energy too); `make fidelity`
    has the report over every config."""
    row = measure(entry, load_accel_config("default"))
    assert all(layer["counters_equal"] for layer in row["layers"]), row["layers"]
    assert row["estimate_cycles"] == row["rtl_cycles"] and row["cycle_error"] == 0
    assert row["max_layer_energy_error"] == 0
