from dataclasses import replace

import optuna
import pytest

from codesign.cli import DEFAULT_DEMO
from codesign.data import load_digits
from codesign.demo import run_demo
from codesign.evaluate import get_evaluator
from codesign.experiment import load_experiment
from codesign.search import run_search, trials_table
from hw.config import load_accel_config

pytestmark = [pytest.mark.rtl, pytest.mark.slow]
DEMO = DEFAULT_DEMO


def small_experiment(trials):
    exp = load_experiment(DEMO)
    search = replace(exp.search, trials=trials, sampler="random", epochs=1, eval_images=20,
                     widths=((2, 4), (4, 8)), objectives=("accuracy", "energy"),
                     bits=((8, 8), (2, 2), (1, 1)))
    return replace(exp, name="test", search=search)


def test_search_persists_and_resumes(tmp_path):
    data = load_digits()
    evaluator = get_evaluator("rtl", load_accel_config("default"), images=20)
    study = run_search(small_experiment(2), data, evaluator, tmp_path, progress=lambda m: None)
    assert len(study.trials) == 2 and (tmp_path / "study.db").exists()
    # A new process would see the same study: reopen it from storage and add a trial.
    study = run_search(small_experiment(1), data, evaluator, tmp_path, progress=lambda m: None)
    stored = optuna.load_study(study_name="test", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(stored.trials) == 3
    for t in stored.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        m = t.user_attrs["metrics"]
        assert 0 <= m["accuracy"] <= 1 and m["cycles"] > 0 and m["energy_j"] > 0
        assert t.values == [m["accuracy"], m["energy_j"]]
        assert t.params["bits1"] in ("8/8", "2/2", "1/1")
    assert "pareto" in trials_table(stored)


def test_demo_runs_end_to_end(tmp_path, capsys):
    exp = small_experiment(1)
    exp = replace(exp, train=replace(exp.train, epochs=2), eval_images=40)
    result = run_demo(exp, tmp_path)
    out = capsys.readouterr().out
    assert "bit-exact on every layer output and the logits" in out
    assert result["metrics"]["cycles"] > 0 and result["metrics"]["images"] == 40
    assert (tmp_path / "demo.json").exists() and (tmp_path / "trials.json").exists()
