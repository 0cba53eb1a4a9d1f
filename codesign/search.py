"""Multi-objective architecture search with Optuna: each trial trains a candidate and measures
it on the accelerator; the study persists in SQLite inside the run directory.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Callable

import optuna

from codesign.data import Dataset
from codesign.evaluate import Evaluator, Metrics
from codesign.experiment import OBJECTIVES, ExperimentConfig
from codesign.models import build_model
from codesign.train import train

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    return {"nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
            "gp": lambda: optuna.samplers.GPSampler(seed=seed),  # multi-objective BO
            "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed)}[name]()


def open_storage(run_dir: Path, url: str | None = None) -> optuna.storages.RDBStorage:
    """The study's storage: SQLite in the run directory, or a database URL shared by many
    machines. Workers send heartbeats, so a killed worker's trial is failed, not left running."""
    url = url or f"sqlite:///{(run_dir / 'study.db').resolve()}"
    with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90,
                                          engine_kwargs={"connect_args": {"timeout": 60}}
                                          if url.startswith("sqlite") else None)


def open_study(exp: ExperimentConfig, run_dir: Path, storage: str | None = None
               ) -> optuna.Study:
    """The experiment's study, created on first use (before workers start, so that they do
    not race to create the schema)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(
        study_name=exp.name, storage=open_storage(run_dir, storage), load_if_exists=True,
        directions=[OBJECTIVES[o][1] for o in exp.search.objectives],
        sampler=make_sampler(exp.search.sampler, exp.seed))


def run_search(exp: ExperimentConfig, data: Dataset, evaluator: Evaluator, run_dir: Path,
               progress: Callable[[str], None] = print, storage: str | None = None,
               total: bool = False) -> optuna.Study:
    """Run `exp.search.trials` trials (with `total`: until the study has that many completed,
    which is what resuming and several workers want)."""
    study = open_study(exp, run_dir, storage)
    train_cfg = replace(exp.train, epochs=exp.search.epochs)

    def objective(trial: optuna.Trial) -> list[float]:
        widths = tuple(trial.suggest_categorical(f"width{i}", list(choices))
                       for i, choices in enumerate(exp.search.widths))
        # Bit widths of layers 2..n (the first layer reads the 8-bit image), as "w/a" strings.
        pairs = [f"{w}/{a}" for w, a in exp.search.bits]
        bits = ((8, 8),) + tuple(
            tuple(int(b) for b in trial.suggest_categorical(f"bits{i}", pairs).split("/"))
            for i in range(1, len(widths)))
        candidate = replace(exp.model, widths=widths, bits=bits)
        progress(f"trial {trial.number}: widths {widths}, bits (w/a) "
                 f"{' '.join(f'{w}/{a}' for w, a in bits)}: training {train_cfg.epochs} epochs")
        model = train(build_model(candidate, data.input_shape, data.classes, exp.seed), data,
                      train_cfg)
        metrics = evaluator.evaluate(model, data)
        trial.set_user_attr("metrics", metrics.as_dict())
        progress(f"trial {trial.number}: {summary(metrics)}")
        return [float(getattr(metrics, OBJECTIVES[o][0])) for o in exp.search.objectives]

    if total:
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        if done < exp.search.trials:
            study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(
                exp.search.trials, states=(optuna.trial.TrialState.COMPLETE,))])
    else:
        study.optimize(objective, n_trials=exp.search.trials)
    return study


def summary(m: Metrics) -> str:
    where = {"rtl": "RTL", "golden": "golden model",
             "estimate": "integer reference + estimator"}.get(m.fidelity, m.fidelity)
    return (f"accuracy {m.accuracy:.3f} ({where}, {m.images} images), {m.cycles} cycles, "
            f"{m.latency_s * 1e6:.1f} us, {m.energy_j * 1e9:.1f} nJ, {m.size_bits} bits")


def trials_table(study: optuna.Study) -> str:
    pareto = {t.number for t in study.best_trials}
    head = (f"{'trial':>5} {'widths bits':<12} {'accuracy':>8} {'cycles':>8} {'latency_us':>10} "
            f"{'energy_nJ':>9} {'size_bits':>9}  pareto")
    rows = [head]
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            rows.append(f"{t.number:>5} {t.state.name}")
            continue
        m = t.user_attrs["metrics"]
        widths = ",".join(str(v) for k, v in sorted(t.params.items()) if k.startswith("width"))
        widths += "".join(f" {v}" for k, v in sorted(t.params.items()) if k.startswith("bits"))
        rows.append(f"{t.number:>5} {widths:<12} {m['accuracy']:>8.3f} {m['cycles']:>8} "
                    f"{m['latency_s'] * 1e6:>10.1f} {m['energy_j'] * 1e9:>9.1f} "
                    f"{m['size_bits']:>9}  {'*' if t.number in pareto else ''}")
    return "\n".join(rows)


def write_trials(study: optuna.Study, path: Path) -> None:
    rows = [{"number": t.number, "state": t.state.name, "params": t.params,
             "values": t.values, "metrics": t.user_attrs.get("metrics")} for t in study.trials]
    path.write_text(json.dumps(rows, indent=2))
