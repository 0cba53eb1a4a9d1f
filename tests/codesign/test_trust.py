"""What people share and start together is handled safely: processes starting at once on one
new study draw distinct candidates and never train one twice; a run directory belongs to one
experiment and nothing in it is a link; an empty run still gets a report; names cannot leave
runs/; YAML with a key given twice, bad act_scales, an edited evaluation-cache entry are refused
or ignored in one line."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace

import numpy as np
import optuna
import pytest
import yaml

from codesign.data import load_digits
from codesign.evalcache import EvalCache
from codesign.front import distinct_completed
from codesign.report import write_report
from codesign.rundir import claim, refuse_links
from codesign.search import run_search
from codesign.study import open_storage
from hw.errors import CodesignError
from tests.clirun import run
from tests.codesign.test_search import small_experiment


def _quick(trials):
    exp = small_experiment(trials)
    return replace(exp, search=replace(exp.search, fidelity="estimate"))


def _one_process(run_dir: str, trials: int, start) -> None:
    start.wait()  # every process begins in the same instant
    run_search(_quick(trials), load_digits(), __import__("pathlib").Path(run_dir),
               progress=lambda m: None)


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 4])
def test_processes_starting_together_on_a_new_study_draw_distinct_candidates(tmp_path,
                                                                              processes):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_one_process, args=(str(tmp_path), 2, start))
             for _ in range(processes)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(600)
        assert p.exitcode == 0
    study = optuna.load_study(study_name="test", storage=open_storage(tmp_path))
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
               and "duplicate_of" not in t.user_attrs]
    keys = [t.user_attrs["key"] for t in trained]
    assert len(keys) == len(set(keys))  # no candidate trained twice
    assert len(distinct_completed(study)) == len(set(keys))  # the report counts them so
    seeds = [t.system_attrs.get("sampler_seed", (t.number, t.state.name, t.user_attrs.get("error")))
             for t in study.trials]
    assert len(seeds) == len(set(seeds)) == len(study.trials) >= 2


def test_a_run_directory_belongs_to_one_experiment(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("name: a\n")
    assert claim(run_dir, "name: a\n") == run_dir  # the same experiment goes on there
    with pytest.raises(CodesignError, match="holds another search's config.yaml"):
        claim(run_dir, "name: b\n")
    moved = claim(run_dir, "name: b\n", force=True)
    assert moved.parent == run_dir and moved != run_dir
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.db").write_bytes(b"")
    with pytest.raises(CodesignError, match="holds a search's results but no config.yaml"):
        claim(tmp_path / "s", "name: a\n")


def test_the_cli_refuses_another_experiments_run_directory(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("name: other\n")
    (run_dir / "report.md").write_text("another run's report\n")
    out = run("search", "configs/experiments/digits.yaml", "--run-dir", run_dir, "--trials", 1)
    assert out.returncode == 2 and "holds another search's config.yaml" in out.stderr
    assert (run_dir / "config.yaml").read_text() == "name: other\n"
    assert (run_dir / "report.md").read_text() == "another run's report\n"


def test_no_write_follows_a_link_out_of_a_run(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    outside = tmp_path / "elsewhere.md"
    (run_dir / "report.md").symlink_to(outside)
    with pytest.raises(CodesignError, match="report.md: is a symbolic link"):
        refuse_links(run_dir)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": "x"}))
    out = run("report", run_dir)
    assert out.returncode == 2 and not outside.exists()


@pytest.mark.parametrize("name", ["../../x", "a\nb", ".hidden", "", "a/b", "x" * 65])
def test_an_experiment_name_cannot_leave_runs(tmp_path, name):
    data = yaml.safe_load(open("configs/experiments/digits.yaml"))
    data["name"] = name
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(data))
    out = run("search", path, "--trials", 1)
    assert out.returncode == 2 and "field 'name': must be 1-64 letters" in out.stderr
    assert not (tmp_path.parent / "x").exists()


def test_an_empty_run_gets_a_report_that_says_so(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="test",
                                storage=open_storage(tmp_path))
    t = study.ask()
    study.tell(t, state=optuna.trial.TrialState.PRUNED)
    t = study.ask()
    t.set_user_attr("error", "it failed")
    study.tell(t, state=optuna.trial.TrialState.FAIL)
    exp = _quick(2)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**yaml.safe_load(
        open("configs/experiments/digits.yaml")), "name": "test"}))
    report = write_report(study, tmp_path, exp.search.objectives)
    assert "This run is empty" in report.read_text()
    out = run("report", tmp_path)
    assert out.returncode == 0, out.stderr


def test_a_key_given_twice_is_refused_by_line(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("name: a\nseed: 1\nseed: 2\n")
    out = run("search", path)
    assert out.returncode == 2 and "line 3" in out.stderr and "'seed' given twice" in out.stderr


@pytest.mark.parametrize("scales, error", [
    ({"conv": "abc"}, "act_scales.conv: 'abc'; a scale is a positive number"),
    ({"conv": -1.0}, "act_scales.conv: -1.0"),
    ({"nothing.here": 0.1}, "layers nothing.here match no layer"),
])
def test_act_scales_are_checked(tmp_path, scales, error):
    from tests.codesign.test_errors import NET_PY
    (tmp_path / "net.py").write_text(NET_PY)
    spec = tmp_path / "q.yaml"
    spec.write_text(yaml.safe_dump({"act_scales": scales}))
    out = run("compile", f"{tmp_path / 'net.py'}:Net", "--quant", spec, "-o", tmp_path / "c")
    assert out.returncode == 2 and error in out.stderr, out.stderr


def test_an_edited_evaluation_cache_entry_is_never_served(tmp_path):
    warned = []
    cache = EvalCache(tmp_path / "e.sqlite", warn=warned.append)
    cache.put("k", {"total": 12345})
    assert cache.get("k") == {"total": 12345}
    row = cache.db.execute("SELECT value FROM costs").fetchone()[0]
    cache.db.execute("UPDATE costs SET value = ?", (row.replace("12345", "1"),))
    assert cache.get("k") is None and "fails its check" in warned[-1]
    mac = row.partition("\n")[0]
    key = (tmp_path / "evaluations.key")
    assert key.stat().st_mode & 0o077 == 0 and len(mac) == 64
    np.testing.assert_equal(cache.get("missing"), None)


@pytest.mark.slow
def test_workers_stop_when_the_search_that_started_them_is_killed(tmp_path):
    """Killing the main process of --workers once left its workers running to the end with
    nobody to write the report: they now stop within seconds; --resume continues."""
    import os
    import signal
    import time

    from tests.codesign.test_search import QUICK, _search, _spawned_children
    (tmp_path / "quick.yaml").write_text(QUICK)
    proc = _search(str(tmp_path / "quick.yaml"), "--run-dir", str(tmp_path / "run"),
                   "--trials", "80", "--workers", "2", stdout=open(tmp_path / "log", "w"))
    deadline = time.time() + 120
    while time.time() < deadline and len(_spawned_children(proc.pid)) < 2:
        time.sleep(0.2)
    workers = _spawned_children(proc.pid)
    assert len(workers) == 2, (tmp_path / "log").read_text()[-2000:]
    time.sleep(3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def alive(pid):
        try:
            os.kill(pid, 0)
            return open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    deadline = time.time() + 15  # 80 trials would take minutes
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.5)
    assert not any(alive(w) for w in workers)


@pytest.mark.slow
@pytest.mark.rtl
def test_report_takes_the_run_directory_demo_writes(tmp_path):
    from tests.codesign.test_search import QUICK
    (tmp_path / "quick.yaml").write_text(QUICK)
    out = run("demo", "--config", tmp_path / "quick.yaml", "--run-dir", tmp_path / "d",
              "--trials", 1)
    assert out.returncode == 0, out.stderr[-2000:]
    assert run("report", tmp_path / "d").returncode == 0


def test_a_crafted_model_file_in_a_run_directory_runs_no_code(tmp_path):
    """A run directory's models/trialN.pt is read with torch's tensors-only unpickler."""
    import os

    import torch

    from codesign.search import load_model

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'ran'}",)
    torch.save({"candidate": Evil(), "state_dict": {}, "input_shape": (1, 8, 8), "ptq": {}},
               tmp_path / "trial0.pt")
    with pytest.raises(Exception, match="Weights only load failed|Unsupported"):
        load_model(tmp_path / "trial0.pt", 10)
    assert not (tmp_path / "ran").exists()
