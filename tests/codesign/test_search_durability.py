"""A search never wastes, repeats or loses a trial: fresh draws on every resume and worker,
repeats not counted, failures recorded while the search goes on, a search that can complete
nothing stops, killed trials and baselines recovered, CLI values checked before anything is
written, infeasible trials kept off the Pareto front. Estimator fidelity: no RTL build."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import optuna
import pytest
import yaml

from codesign.data import load_digits
from codesign.front import distinct_completed, held_out_score, pareto_trials
from codesign.search import SearchStalled, run_search, score_front, trials_table
from codesign.study import open_study, sampler_seed
from codesign.space import parse_space
from tests.codesign.test_search import SMALL_SPACE, small_experiment

TINY_ACCEL = yaml.safe_load(open("configs/accel/tiny.yaml"))


def quick(trials, **search):
    exp = small_experiment(trials)
    return replace(exp, search=replace(exp.search, fidelity="estimate", **search))


def keys(study):
    return [t.user_attrs["key"] for t in distinct_completed(study)]


def test_sampler_streams_differ_per_resume_and_worker():
    assert sampler_seed(7, 0, 0) == 7  # a new study's first process: the configured seed
    seeds = {sampler_seed(7, n, w) for n in (0, 4, 8) for w in (0, 1, 2)}
    assert len(seeds) == 9


@pytest.mark.slow
def test_a_resume_draws_new_candidates_and_repeats_do_not_count(tmp_path):
    data = load_digits()
    exp = quick(3)  # every candidate measured in full (small_experiment: no early stops)
    first = run_search(exp, data, tmp_path, progress=lambda m: None)
    drawn = [t.params for t in first.trials]
    again = run_search(exp, data, tmp_path, progress=lambda m: None)
    later = [t.params for t in again.trials[len(drawn):]]
    assert later[:len(drawn)] != drawn  # not the same stream again
    assert len(keys(again)) == 6 == len(set(keys(again)))  # six distinct candidates


@pytest.mark.slow
def test_a_space_with_nothing_new_stops_with_a_clear_message(tmp_path):
    one = {"depth": [2], "width": [2], "bits": [[8, 8]], "blocks": [{}, {"stride": [2]}]}
    exp = quick(3, space=parse_space(one, "a space of one candidate"))
    said = []
    with pytest.raises(SearchStalled, match="repeated a finished candidate"):
        run_search(exp, load_digits(), tmp_path, progress=said.append)
    study = open_study(exp, tmp_path)
    assert len(distinct_completed(study)) == 1  # trained once; the repeats answered from it
    assert sum("not trained again" in m for m in said) == 8
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["trial0.pt"]


@pytest.mark.slow
def test_a_search_that_fits_nothing_stops_before_training_anything(tmp_path):
    accel = dict(TINY_ACCEL, name="crumb", dmem_rows=8,
                 units=[u for u in TINY_ACCEL["units"] if u["type"] != "dma"])
    path = tmp_path / "crumb.yaml"
    path.write_text(yaml.safe_dump(accel))
    exp = replace(quick(2), accelerator=str(path))
    said = []
    with pytest.raises(SearchStalled, match="8 did not fit the accelerator"):
        run_search(exp, load_digits(), tmp_path / "run", progress=said.append)
    assert not any(": training " in m for m in said), said
    assert not (tmp_path / "run" / "models").exists()


@pytest.mark.slow
def test_a_failing_candidate_is_recorded_and_the_search_goes_on(tmp_path):
    """A diverged training (a huge learning rate) gives scales no shifter holds: that trial
    fails with its reason, the others complete."""
    exp = quick(3, train=replace(small_experiment(1).search.train, lr=1e9))
    study = run_search(exp, load_digits(), tmp_path, progress=lambda m: None)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all("requantization scale" in t.user_attrs["error"] for t in failed)
    assert len(distinct_completed(study)) == 3
    assert "FAIL     CompileError: layer" in trials_table(study)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask() stands in for a worker
def test_a_killed_trial_is_failed_and_its_baseline_queued_again(tmp_path):
    baseline = {"b0.width": 2, "b1.width": 2, "b0.bits": "8/8", "b1.bits": "8/8",
                "fc.bits": "8/8"}
    exp = quick(1, enqueue=(baseline,))
    study = open_study(exp, tmp_path)
    trial = study.ask()  # the worker took the baseline ...
    assert trial.params == {} and study.trials[0].system_attrs["fixed_params"] == baseline
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # ... and was killed: its process is gone, its heartbeat not yet expired
    import socket
    trial.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    study = open_study(exp, tmp_path)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    assert "ended mid-trial" in study.trials[0].user_attrs["error"]
    assert study.trials[1].system_attrs["fixed_params"] == baseline
    open_study(exp, tmp_path)  # opening again queues nothing more
    assert len(optuna.load_study(study_name=exp.name, storage=study._storage).trials) == 2


def test_infeasible_trials_are_never_on_the_pareto_front(tmp_path):
    exp = quick(1)
    study = open_study(exp, tmp_path)
    dist = {"b0.width": optuna.distributions.CategoricalDistribution([2, 4])}
    for width, acc, energy, slack in ((2, 0.9, 1e-9, 0.5), (4, 0.8, 2e-9, -0.1)):
        study.add_trial(optuna.trial.create_trial(
            params={"b0.width": width}, distributions=dist, values=[acc, energy],
            user_attrs={"constraints": [slack], "key": str(width), "metrics": {
                "accuracy": acc, "cycles": 1, "latency_s": 1e-6, "energy_j": energy,
                "size_bits": 8}}))
    assert [t.params["b0.width"] for t in pareto_trials(study)] == [4]  # the better one misses
    assert "(misses a constraint)" in trials_table(study)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "codesign", "search", *args], cwd=cwd,
                          capture_output=True, text=True)


@pytest.mark.slow
def test_cli_values_are_checked_before_anything_is_written(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    config = "name: r\nsearch: {trials: 4}\n"
    (run / "config.yaml").write_text(config)
    for bad in (("--resume", str(run), "--trials", "-1"), ("--resume", str(run), "--trials", "0"),
                ("--resume", str(run), "--workers", "0")):
        proc = _cli(*bad, cwd=tmp_path)
        assert proc.returncode != 0 and "error: --" in proc.stderr, proc.stderr
    assert (run / "config.yaml").read_text() == config



def test_candidates_are_selected_on_validation_and_the_front_tested_once(tmp_path):
    data = load_digits()
    sel = data.with_validation(0.1, seed=3)
    assert sel.held_out == "validation" and len(sel.x_test) + len(sel.x_train) == len(data.x_train)
    assert set(np.unique(sel.y_test)) == set(range(10))  # every class held out
    seen = {x.tobytes() for x in sel.x_train}
    assert not any(x.tobytes() in seen for x in sel.x_test)
    exp = quick(2)
    said = []
    study = run_search(exp, data, tmp_path, progress=said.append)
    assert any("validation accuracy" in m for m in said)  # the training log names the split
    score_front(exp, data, tmp_path, study, progress=said.append)
    front = pareto_trials(study)
    results = [held_out_score(study, t) for t in front]
    assert front and all(0 <= r["accuracy"] <= 1 for r in results)
    assert all(r["images"] == exp.search.eval_images for r in results)


@pytest.mark.parametrize("name", ["run%42", "x?y", "a#b"])
def test_a_run_directory_name_is_its_own_database_path(tmp_path, name):
    from codesign.study import open_storage
    run = tmp_path / name
    run.mkdir()
    storage = open_storage(run)
    optuna.create_study(study_name="s", storage=storage)
    assert (run / "study.db").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_candidate_that_cannot_reach_the_front_stops_training(tmp_path):
    """Hardware objectives are exact before training; accuracy can still gain at most what
    finished trials gained from the same epoch (+ a margin)."""
    from codesign.search import dominated_so_far
    exp = quick(1, objectives=("accuracy", "size"))
    study = open_study(exp, tmp_path)
    dist = {"b0.width": optuna.distributions.CategoricalDistribution([1, 2, 3])}
    for i, (acc, size) in enumerate(((0.9, 1000), (0.8, 500), (0.7, 300))):
        study.add_trial(optuna.trial.create_trial(
            params={"b0.width": i + 1}, distributions=dist, values=[acc, size],
            user_attrs={"curve": [["QAFT", 1, acc - 0.1]], "key": str(i),
                        "metrics": {"accuracy": acc}}))
    why, values = dominated_so_far(study, exp, {"size_bits": 2000}, "QAFT", 1, 0.5)
    assert "even at accuracy 0.620" in why and "trial 0" in why and values == [0.62, 2000]
    assert dominated_so_far(study, exp, {"size_bits": 100}, "QAFT", 1, 0.5) is None  # smallest
    assert dominated_so_far(study, exp, {"size_bits": 2000}, "QAFT", 2, 0.5) is None  # no curves
    assert dominated_so_far(study, exp, {"size_bits": 2000}, "QAFT", 1, 0.85) is None  # may win


@pytest.mark.slow
def test_a_search_stops_dominated_candidates_early_and_still_measures_its_budget(tmp_path):
    exp = quick(12, prune=True)  # a space of 24 candidates
    said = []
    study = run_search(exp, load_digits(), tmp_path, progress=said.append)
    assert len(distinct_completed(study)) == 12
    stopped = [t for t in study.trials if "stopped_early" in t.user_attrs]
    measured = {t.number for t in distinct_completed(study)}
    assert stopped and all(t.number not in measured for t in stopped)
    assert all(t.number not in {p.number for p in pareto_trials(study)} for t in stopped)
    assert sum("training stopped at " in m for m in said) == len(stopped)


@pytest.mark.slow
def test_a_warm_start_seeds_the_sampler_without_counting(tmp_path):
    import yaml as _yaml
    data = load_digits()
    first = run_search(quick(2), data, tmp_path / "a", progress=lambda m: None)
    from codesign.cli import DEFAULT_DEMO
    config = _yaml.safe_load(open(DEFAULT_DEMO))  # what the CLI writes into a run directory
    config["name"] = "test"
    config["search"].update(objectives=["accuracy", "energy"], space=SMALL_SPACE)
    (tmp_path / "a" / "config.yaml").write_text(_yaml.safe_dump(config))
    prior = keys(first)
    exp = quick(2, warm_start=str(tmp_path / "a"))
    study = run_search(exp, data, tmp_path / "b", progress=lambda m: None)
    warm = [t for t in study.trials if "warm_start" in t.user_attrs]
    assert sorted(t.user_attrs["key"] for t in warm) == sorted(prior)
    assert len(distinct_completed(study)) == 2  # its own budget, measured here
    assert not {t.number for t in warm} & {t.number for t in pareto_trials(study)}


@pytest.mark.slow  # one BoTorch proposal: about 5 s on 2 cores (codesign.bo)
def test_botorch_qlognehvi_proposes_after_its_random_start(tmp_path):
    from codesign.study import BOTORCH_STARTUP
    exp = quick(BOTORCH_STARTUP + 1, sampler="botorch")
    said = []
    study = run_search(exp, load_digits(), tmp_path, progress=said.append)
    assert len(distinct_completed(study)) == BOTORCH_STARTUP + 1
    assert type(study.sampler).__name__ == "BoTorchSampler"
    assert study.sampler.proposal_seconds > 0  # its one proposal after the random start


@pytest.mark.slow
def test_a_wall_time_budget_ends_the_search(tmp_path):
    """No trial starts after `time_budget_s`: a budget shorter than one trial measures one
    candidate of the 50 asked for, and the search returns normally."""
    study = run_search(quick(50, time_budget_s=0.01), load_digits(), tmp_path,
                       progress=lambda m: None)
    assert len(study.trials) == 1 and len(distinct_completed(study)) == 1


@pytest.mark.slow
def test_area_is_an_objective_known_before_training(tmp_path):
    """The accelerator's area (logic synthesized by Yosys, memories as bit cells) is a search
    objective; a bound on it prunes candidates before any training."""
    from hw.area import area, total_ge
    from hw.config import load_accel_config
    exp = replace(quick(1, objectives=("accuracy", "area")), accelerator="tiny")
    study = run_search(exp, load_digits(), tmp_path / "a", progress=lambda m: None)
    want = total_ge(area(load_accel_config("tiny")))
    (t,) = distinct_completed(study)
    assert t.values[1] == t.user_attrs["metrics"]["area_ge"] == want > 0
    assert "area" in trials_table(study).splitlines()[0].split()
    said = []
    bound = replace(exp, search=replace(exp.search, constraints=(("area", "max", want / 2),)))
    with pytest.raises(SearchStalled, match="did not fit the accelerator or meet a constraint"):
        run_search(bound, load_digits(), tmp_path / "b", progress=said.append)
    assert not any(": training " in m for m in said)
    assert any(f"area {want:.4g} > max" in m for m in said)


def test_the_trials_table_shows_repeats_of_a_stopped_trial():
    """A repeat of a candidate whose trial stopped early has no metrics of its own: the table
    says so instead of failing at the end of a search (it did, after a 30-trial run)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    kept = {"metrics": {"accuracy": 0.9, "size_bits": 1000}, "description": "a"}
    study.add_trial(optuna.trial.create_trial(values=[0.9, 1000.0], user_attrs=kept))
    study.add_trial(optuna.trial.create_trial(
        values=[0.8, 900.0], user_attrs={"stopped_early": "at QAFT epoch 1: dominated"}))
    study.add_trial(optuna.trial.create_trial(values=[0.8, 900.0],
                                              user_attrs={"duplicate_of": 1}))
    rows = trials_table(study).splitlines()
    assert rows[2].split()[:2] == ["1", "STOPPED"] and "dominated" in rows[2]
    assert rows[3].split()[:2] == ["2", "STOPPED"] and "as trial 1" in rows[3]
