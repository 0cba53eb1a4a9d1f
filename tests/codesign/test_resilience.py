"""Fault-injection engines and statistics: the batched engine against faulty layers run one at a
time through the host graph, the RTL against the batched engine on the same sampled memory
faults, and the campaign's numbers."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from codesign.data import load_digits
from codesign.errors import CodesignError
from codesign.evaluate import compile_quantnet
from codesign.faults import draw, faulty_layer, select
from codesign.models import BlockSpec, Candidate, build_model
from codesign.resilience import (FaultEngine, MachineFaultEngine, campaign, injections_needed,
                                 wilson)
from codesign.sensitivity import predicted_ccr
from compiler.pipeline import compile_model
from compiler.runtime import CompiledNetwork
from hw.config import load_accel_config
from tests.codesign.test_errors import cli

MIXED = Candidate((BlockSpec(8, 1, 3, bits=(8, 8)), BlockSpec(16, 2, 3, bits=(2, 2)),
                   BlockSpec(16, 1, 3, residual=True, bits=(1, 1))), "flatten", (8, 8))


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def mixed(digits, tiny):
    """A residual network with 8-bit, ternary and binary layers, on the tiny accelerator."""
    torch.manual_seed(0)
    model = build_model(MIXED, digits.x_train.shape[1:], digits.classes, seed=3)
    return compile_quantnet(model, tiny, digits.x_train[:64])


@pytest.fixture(scope="module")
def traced(mixed, digits):
    engine = FaultEngine(mixed)
    return engine, engine.trace(digits.x_test[:24])


def test_sample_sizes_and_intervals():
    assert injections_needed(0.01) == 9604 and injections_needed(0.05) == 385
    assert injections_needed(0.05, population=1000) == 278  # Leveugle et al., finite N
    lo, hi = wilson(10, 100)
    assert lo == pytest.approx(0.0552, abs=1e-4) and hi == pytest.approx(0.1744, abs=1e-4)
    assert wilson(0, 50)[0] == 0.0 and wilson(50, 50)[1] == 1.0


def _one_at_a_time(net: CompiledNetwork, image, flips, backend="reference"):
    """The network with the faulty layers compiled into it, through the host graph."""
    per_layer: dict[str, dict] = {}
    for f in flips.values():
        if f.tensor.site in ("weights", "params"):
            per_layer.setdefault(f.tensor.layer, {})[f.tensor.tensor] = (f.index, f.mask)
    layers = {b: replace(v, layer=faulty_layer(v.layer, per_layer[b]))
              if b in per_layer else v for b, v in net.program.layers.items()}
    program = replace(net.program, layers=layers)
    with replace(net, program=program).runner(backend) as runner:
        return np.asarray(runner(image[None]), np.float32).ravel()


def test_batched_engine_equals_faulty_layers_run_one_at_a_time(mixed, traced, digits):
    """Weight and parameter faults in a batch of injections: each injection's output equals
    the host-graph run of the network whose layers hold its faulty values."""
    engine, trace = traced
    tensors = select(mixed.layers, ("weights", "params"))
    rng = np.random.default_rng(5)
    flips = draw(tensors, 3.0 / sum(t.bits for t in tensors), 40, rng)
    images = np.arange(40) % 24
    batched = engine.run(trace, images, flips)
    changed = 0
    for b in range(40):
        mine = {k: replace(f, item=f.item[f.item == b] * 0, index=f.index[f.item == b],
                           mask=f.mask[f.item == b]) for k, f in flips.items()}
        mine = {k: f for k, f in mine.items() if len(f.index)}
        want = _one_at_a_time(mixed, digits.x_test[images[b]], mine)
        assert np.array_equal(batched[b].ravel(), want), f"injection {b}"
        changed += int(np.argmax(want) != trace.logits[images[b]].argmax())
    assert changed > 0  # faults that matter were among them


def test_fault_free_engine_matches_the_runner_and_faults_change_decisions(traced, digits):
    engine, trace = traced
    clean = engine.decisions(trace, np.arange(24), {})
    assert np.array_equal(clean, trace.logits.argmax(axis=1))
    none = campaign(engine, trace, digits.y_test[:24], 0.0, 200)
    heavy = campaign(engine, trace, digits.y_test[:24], 1e-2, 200)
    assert none.changed == 0 and none.flips_per_injection == 0
    assert heavy.ccr > 0.3 and heavy.flips_per_injection > 10
    one = campaign(engine, trace, None, 1e-3, 200, ("accumulators",), (engine.layers[0].name,))
    assert one.accuracy is None and one.flips_per_injection > 0


@pytest.mark.slow
def test_rtl_and_reference_give_identical_outputs_on_1000_memory_faults(digits):
    """The same sampled faults in weights, parameters and activations, flipped in the RTL's
    memories through the harness and applied by the batched engine: identical network outputs
    on every one. (The default accelerator: each injection recompiles the faulty layers, which
    takes 30 ms there and 0.7 s on tiny, whose memory makes the compiler try many layouts.)"""
    torch.manual_seed(0)
    model = build_model(MIXED, digits.x_train.shape[1:], digits.classes, seed=3)
    net = compile_quantnet(model, load_accel_config("default"), digits.x_train[:64])
    engine = FaultEngine(net)
    trace = engine.trace(digits.x_test[:24])
    tensors = select(net.layers, ("weights", "params", "activations"))
    rng = np.random.default_rng(11)
    rtl = MachineFaultEngine(net, "rtl")
    same = changed = 0
    sites = set()
    try:
        for i in range(1000):
            flips = draw(tensors, 2.0 / sum(t.bits for t in tensors), 1, rng)
            sites |= {f.tensor.site for f in flips.values()}
            image = np.array([i % 24])
            want = engine.run(trace, image, flips)[0].ravel()
            got = rtl.run(digits.x_test[image[0]], flips).ravel()
            same += int(np.array_equal(want, got))
            changed += int(np.argmax(want) != trace.logits[image[0]].argmax())
    finally:
        rtl.close()
    assert same == 1000
    assert sites == {"weights", "params", "activations"} and changed > 10


def test_the_rtl_engine_refuses_sites_it_cannot_reach(mixed, digits):
    rtl = MachineFaultEngine(mixed, "golden")
    try:
        t = select(mixed.layers, ("accumulators",))
        flips = draw(t, 1e-2, 1, np.random.default_rng(0))
        with pytest.raises(CodesignError, match="not accumulators"):
            rtl.run(digits.x_test[0], flips)
    finally:
        rtl.close()


class HostBetween(nn.Module):
    input_shape = (16,)

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(16, 8), nn.Linear(8, 4)

    def forward(self, x):
        return self.b(torch.cumsum(self.a(x), 1))  # the cumulative sum runs on the host


def test_a_host_op_between_layers_is_refused_by_name(tiny):
    torch.manual_seed(0)
    net = compile_model(HostBetween().eval(), torch.zeros(1, 16), tiny)
    with pytest.raises(CodesignError, match=r"layer b: input 0 is computed on the host"):
        FaultEngine(net)


def test_predictor_orders_precisions_and_rates(mixed):
    """More BER, more changes; an 8-bit network holds more decisive bits than the same
    topology in binary."""
    low, high = predicted_ccr(mixed.layers, 1e-6), predicted_ccr(mixed.layers, 1e-4)
    assert 0 < low < high < 1
    data = load_digits()

    def net(bits):
        cand = Candidate((BlockSpec(8, 1, 3, bits=(8, 8)), BlockSpec(16, 2, 3, bits=bits)),
                         "flatten", bits)
        model = build_model(cand, data.x_train.shape[1:], data.classes)
        return compile_quantnet(model, mixed.config, data.x_train[:16]).layers

    assert predicted_ccr(net((8, 8)), 1e-5) > predicted_ccr(net((1, 1)), 1e-5)


NET_PY = '''
import torch
from torch import nn


class Net(nn.Module):
    input_shape = (1, 8, 8)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))
'''


def test_command_writes_ccr_with_intervals(tmp_path, digits):
    (tmp_path / "net.py").write_text(NET_PY)
    np.save(tmp_path / "x.npy", digits.x_test[:20])
    np.save(tmp_path / "y.npy", digits.y_test[:20])
    out = tmp_path / "r.json"
    status, err = cli("resilience", f"{tmp_path}/net.py:Net", "--accel", "tiny", "--inputs",
                      tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--ber", "1e-5,1e-3",
                      "--injections", "300", "--json", out, "--plot", tmp_path / "r.png")
    assert status == 0, err
    r = json.loads(out.read_text())
    every = r["curves"]["weights+params+activations+accumulators"]
    assert [p["ber"] for p in every] == [1e-5, 1e-3]
    for p in every:
        assert p["ccr_ci"][0] <= p["ccr"] <= p["ccr_ci"][1] and p["injections"] == 300
        assert p["accuracy"] is not None
    assert every[1]["ccr"] > every[0]["ccr"]
    assert set(r["curves"]) == {"weights+params+activations+accumulators", "weights",
                                "params", "activations", "accumulators"}
    assert r["most_sensitive_layer"] in {"conv", "fc"} and len(r["per_layer"]) == 2
    assert (tmp_path / "r.png").stat().st_size > 0


@pytest.mark.parametrize("argv,text", [
    (["--dataset", "digits", "--sites", "weights,rom"], "--sites"),
    (["--dataset", "digits", "--ber", "2"], "--ber 2"),
    (["--dataset", "digits", "--engine", "rtl", "--sites", "accumulators"], "not accumulators"),
    ([], "--dataset NAME or --inputs")])
def test_command_errors_name_the_option(tmp_path, argv, text):
    (tmp_path / "net.py").write_text(NET_PY)
    status, err = cli("resilience", f"{tmp_path}/net.py:Net", "--accel", "tiny",
                      "--injections", "10", "--images", "4", *argv)
    assert status != 0 and text in err and "Traceback" not in err, err


def test_evaluators_give_injected_and_predicted_ccr(tiny, digits):
    from codesign.evaluate import ResilienceSpec, get_evaluator
    model = build_model(Candidate.plain([4], [2]), digits.x_train.shape[1:], digits.classes)
    spec = ResilienceSpec(ber=1e-3, injections=120, images=12)
    m = get_evaluator("estimate", tiny, 12, spec).evaluate(model, digits)
    assert m.ccr_fidelity == "injection" and 0 < m.ccr <= 1 and 0 < m.ccr_proxy < 1
    proxy = get_evaluator("estimate", tiny, 12, replace(spec, measure=False)).evaluate(
        model, digits)
    assert proxy.ccr == proxy.ccr_proxy == m.ccr_proxy and proxy.ccr_fidelity == "proxy"
    plain = get_evaluator("estimate", tiny, 12).evaluate(model, digits)
    assert plain.ccr is None and plain.cycles == m.cycles


def test_experiments_name_the_resilience_objectives_and_check_their_settings():
    import yaml
    from codesign.experiment import parse_experiment
    from codesign.cli import DEFAULT_DEMO
    data = yaml.safe_load((DEFAULT_DEMO.parent / "digits.yaml").read_text())
    data["search"] |= {"objectives": ["accuracy", "energy", "resilience"],
                       "resilience": {"ber": 1e-5, "sites": ["weights", "params"]}}
    spec = parse_experiment(data, "x.yaml").search.resilience_spec()
    assert spec.measure and spec.ber == 1e-5 and spec.sites == ("weights", "params")
    data["search"]["objectives"] = ["accuracy", "resilience_proxy"]
    assert not parse_experiment(data, "x.yaml").search.resilience_spec().measure
    data["search"]["resilience"] = {"ber": 2}
    with pytest.raises(CodesignError, match=r"x.yaml: search: resilience: field 'ber'"):
        parse_experiment(data, "x.yaml")


@pytest.mark.slow
def test_stuck_at_bits_of_a_lane_on_the_fault_injection_build(mixed, traced, digits, tiny):
    """A permanent stuck-at-1 high bit in lane 0's accumulator register changes decisions;
    the normal build has no fault port."""
    from codesign.resilience import stuck_at
    from hw.errors import SimulationError
    from hw.sim import RtlSimulator
    found = stuck_at(mixed, digits.x_test[:12], [(0, 30, 1), (0, 30, 0)],
                     progress=lambda m: None)
    assert found[0]["changed"] > 0 and found[0]["ccr_ci"][0] <= found[0]["ccr"]
    with pytest.raises(SimulationError, match="fault-injection build"):
        RtlSimulator(tiny).stuck_at(0, 1)
