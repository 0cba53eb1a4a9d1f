import os
import re
import signal
import time
from dataclasses import replace
from pathlib import Path

import optuna
import torch
import pytest

from codesign.cli import DEFAULT_DEMO
from codesign.data import load_digits
from codesign.demo import run_demo
from codesign.evaluate import get_evaluator
from codesign.experiment import load_experiment
from codesign.search import run_search, trials_table
from codesign.space import parse_space
from hw.config import load_accel_config

pytestmark = [pytest.mark.rtl, pytest.mark.slow]
DEMO = DEFAULT_DEMO


SMALL_SPACE = {"depth": [2], "width": [2, 4], "bits": [[8, 8], [2, 2], [1, 1]],
               "classifier_bits": [[8, 8], [2, 8]], "blocks": [{}, {"stride": [2]}]}


def small_experiment(trials):
    exp = load_experiment(DEMO)
    search = replace(exp.search, trials=trials, sampler="random", eval_images=20, prune=False,
                     train=replace(exp.search.train, pretrain_epochs=1, epochs=1),
                     objectives=("accuracy", "energy"),
                     space=parse_space(SMALL_SPACE, "small space"))
    return replace(exp, name="test", search=search)


def test_search_persists_and_resumes(tmp_path):
    data = load_digits()
    evaluator = get_evaluator("rtl", load_accel_config("default"), images=20)
    study = run_search(small_experiment(2), data, tmp_path, progress=lambda m: None,
                       evaluator=evaluator)
    assert len(study.trials) == 2 and (tmp_path / "study.db").exists()
    # A new process would see the same study: reopen it from storage and add a trial.
    study = run_search(small_experiment(1), data, tmp_path, progress=lambda m: None,
                       evaluator=evaluator)
    stored = optuna.load_study(study_name="test", storage=f"sqlite:///{tmp_path / 'study.db'}")
    from codesign.front import distinct_completed
    assert len(distinct_completed(stored)) == 3  # (a repeat drawn again is not counted)
    for t in stored.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        m = t.user_attrs["metrics"]
        assert 0 <= m["accuracy"] <= 1 and m["cycles"] > 0 and m["energy_j"] > 0
        assert t.values == [m["accuracy"], m["energy_j"]]
        assert t.params["b1.bits"] in ("8/8", "2/2", "1/1")
        assert t.user_attrs["candidate"]["blocks"][1]["stride"] == 2
    assert "pareto" in trials_table(stored)


def test_demo_runs_end_to_end(tmp_path, capsys):
    exp = small_experiment(1)
    exp = replace(exp, train=replace(exp.train, epochs=2), eval_images=40)
    result = run_demo(exp, tmp_path)
    out = capsys.readouterr().out
    assert "bit-exact on every layer output and the logits" in out
    assert result["metrics"]["cycles"] > 0 and result["metrics"]["images"] == 40
    assert (tmp_path / "demo.json").exists() and (tmp_path / "trials.json").exists()


QUICK = """
name: quick
dataset: digits
accelerator: tiny
seed: 0
model: {widths: [4, 8], strides: [1, 2], kernel: 3}
train: {epochs: 1, batch_size: 64, lr: 0.003}
eval_images: 20
search:
  trials: 2
  sampler: random
  objectives: [accuracy, cycles, size]
  pretrain_epochs: 1
  epochs: 1
  eval_images: 20
  fidelity: screen
  space:
    depth: [1, 2]
    width: [2, 4, 8]
    stride: [2]
    bits: [[8, 8], [2, 2], [1, 1]]
    classifier_bits: [[8, 8], [2, 8], [1, 8]]
"""


def _search(*args, stdout=None):
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, "-m", "codesign", "search", *args],
                            stdout=stdout or subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _complete(run_dir):
    stored = optuna.load_study(study_name="quick", storage=f"sqlite:///{run_dir / 'study.db'}")
    return [t for t in stored.trials if t.state == optuna.trial.TrialState.COMPLETE]


def test_killed_search_resumes_with_nothing_lost(tmp_path):
    (tmp_path / "quick.yaml").write_text(QUICK)
    run_dir = tmp_path / "run"
    # Output goes to a file: an unread pipe fills up (Verilator builds print a lot) and blocks.
    log = open(tmp_path / "search.log", "w")
    proc = _search(str(tmp_path / "quick.yaml"), "--run-dir", str(run_dir), "--trials", "4",
                   stdout=log)
    deadline = time.time() + 300

    def finished_one() -> bool:
        try:  # the search may still be creating the database
            return bool(_complete(run_dir))
        except Exception:
            return False

    while time.time() < deadline and proc.poll() is None and not finished_one():
        time.sleep(0.5)
    proc.kill()  # mid-search, after at least one finished trial
    proc.wait()
    log.close()
    assert finished_one(), (tmp_path / "search.log").read_text()[-3000:]
    before = {t.number: t.values for t in _complete(run_dir)}
    out, _ = _search("--resume", str(run_dir)).communicate(timeout=600)
    after = {t.number: t.values for t in _complete(run_dir)}
    assert len(after) >= 4, out
    assert all(after[n] == v for n, v in before.items())  # finished trials kept as they were
    for name in ("report.md", "trials.csv", "trials.json", "pareto.json", "hypervolume.png",
                 "pareto_accuracy_cycles.png"):
        assert (run_dir / name).exists(), name


def test_two_workers_share_one_study(tmp_path):
    (tmp_path / "quick.yaml").write_text(QUICK)
    run_dir = tmp_path / "run"
    out, _ = _search(str(tmp_path / "quick.yaml"), "--run-dir", str(run_dir), "--trials", "4",
                     "--workers", "2").communicate(timeout=600)
    assert "[worker 0]" in out and "[worker 1]" in out, out
    distinct = {t.user_attrs["key"] for t in _complete(run_dir)
                if "duplicate_of" not in t.user_attrs}
    assert len(distinct) >= 4  # the workers draw different candidates


def test_accelerator_parameters_are_searched_with_the_network(tmp_path):
    """Co-design: the vector width is a parameter; each value is its own validated config
    (estimated here, so no RTL is built)."""
    exp = replace(small_experiment(4), seed=2)  # (a seed whose four draws hold both widths)
    space = dict(SMALL_SPACE, accelerator={"vector_width": [64, 128]})
    exp = replace(exp, accelerator="tiny", search=replace(
        exp.search, fidelity="estimate", objectives=("accuracy", "cycles"),
        space=parse_space(space, "co-design space")))
    study = run_search(exp, load_digits(), tmp_path, progress=lambda m: None)
    seen = {}
    for t in study.trials:
        assert t.user_attrs["accelerator"] == f"tiny-vector_width{t.params['accel.vector_width']}"
        assert t.user_attrs["metrics"]["fidelity"] == "estimate"
        seen.setdefault(t.params["accel.vector_width"], []).append(t.user_attrs["metrics"])
    from codesign.front import distinct_completed
    assert len(distinct_completed(study)) == 4 and set(seen) == {64, 128}


def test_a_retrained_candidate_is_served_by_the_evaluation_cache(tmp_path, monkeypatch):
    """Training is seeded, so the same candidate in a new study gives the same model: its
    evaluation comes from the content-addressed cache."""
    monkeypatch.setenv("CODESIGN_CACHE", str(tmp_path / "cache"))
    exp = small_experiment(1)
    exp = replace(exp, search=replace(exp.search, fidelity="estimate"))
    data = load_digits()
    first = run_search(exp, data, tmp_path / "a", progress=lambda m: None)
    said = []
    second = run_search(exp, data, tmp_path / "b", progress=said.append)
    assert any("evaluation cache hit" in m for m in said), said
    assert first.trials[0].user_attrs["metrics"] == second.trials[0].user_attrs["metrics"]


def test_bit_widths_fine_tune_from_one_shared_parent(tmp_path):
    """A bits-only space trains one float parent per run; each candidate starts its QAFT from
    the parent's weights (no float pre-training of its own) and a second run reuses it."""
    bits_only = {"depth": [2], "width": [4], "bits": [[8, 8], [2, 2], [1, 1]],
                 "blocks": [{}, {"stride": [2]}]}
    exp = small_experiment(2)
    exp = replace(exp, search=replace(exp.search, fidelity="estimate", shared_parent=True,
                                      space=parse_space(bits_only, "bits-only space")))
    said = []
    study = run_search(exp, load_digits(), tmp_path, progress=said.append)
    assert sum(m.startswith("shared parent:") for m in said) == 1
    assert not any("float epoch" in m for m in said[said.index(next(
        m for m in said if m.startswith("trial 0"))):]), said
    assert sum("training the shared parent + 1 QAFT" in m for m in said) == len(study.trials)
    parent = torch.load(tmp_path / "models" / "parent.pt", weights_only=True)["state_dict"]
    trained = torch.load(tmp_path / "models" / "trial0.pt", weights_only=True)["state_dict"]
    assert parent.keys() == trained.keys()
    assert all(t.user_attrs["metrics"]["accuracy"] > 0.3 for t in study.trials)
    again = []  # the space holds three candidates: one more completes it
    run_search(replace(exp, search=replace(exp.search, trials=1)), load_digits(), tmp_path,
               progress=again.append)
    assert not any(m.startswith("shared parent:") for m in again)


def _spawned_children(pid: int) -> list[int]:
    """The multiprocessing workers a process spawned (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return sorted(found)


def test_a_worker_that_dies_fails_the_search(tmp_path):
    """`--workers` once exited 0 after a worker died. The survivor measures the budget, no
    trial stays RUNNING, and the exit status says a worker failed."""
    (tmp_path / "quick.yaml").write_text(QUICK)
    run_dir = tmp_path / "run"
    log = open(tmp_path / "search.log", "w")
    proc = _search(str(tmp_path / "quick.yaml"), "--run-dir", str(run_dir), "--trials", "3",
                   "--workers", "2", stdout=log)
    deadline = time.time() + 120
    while time.time() < deadline and len(_spawned_children(proc.pid)) < 2:
        time.sleep(0.2)
    workers = _spawned_children(proc.pid)
    assert len(workers) == 2, (tmp_path / "search.log").read_text()[-3000:]
    time.sleep(5)  # a few seconds into its work
    os.kill(workers[-1], signal.SIGKILL)
    assert proc.wait(timeout=600) == 1
    log.close()
    out = (tmp_path / "search.log").read_text()
    assert re.search(r"worker\(s\) [01] failed \(exit codes -9\)", out), out[-3000:]
    stored = optuna.load_study(study_name="quick", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert not [t for t in stored.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len(_complete(run_dir)) >= 3  # the survivor measured the whole budget
