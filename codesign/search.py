"""Multi-objective architecture search with Optuna: each trial trains a candidate and measures
it on the accelerator; the study persists in SQLite inside the run directory.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import optuna
import torch

from codesign.data import Dataset
from codesign.evalcache import EvalCache, cache_key
from codesign.evaluate import CALIBRATION_IMAGES, Evaluator, Metrics, get_evaluator
from codesign.experiment import OBJECTIVES, ExperimentConfig
from codesign.models import Candidate, QuantNet, build_model
from codesign.train import train
from compiler.errors import MemoryFitError
from hw.config import AccelConfig, load_accel_config

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_sampler(name: str, seed: int, constrained: bool = False, population: int = 50
                 ) -> optuna.samplers.BaseSampler:
    c = {"constraints_func": constraints_of} if constrained else {}
    with warnings.catch_warnings():  # constraints_func is experimental in some samplers
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {"nsga2": lambda: optuna.samplers.NSGAIISampler(
                    seed=seed, population_size=population, **c),
                "gp": lambda: optuna.samplers.GPSampler(seed=seed, **c),  # multi-objective BO
                "tpe": lambda: optuna.samplers.TPESampler(seed=seed, **c),
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
    study = optuna.create_study(
        study_name=exp.name, storage=open_storage(run_dir, storage), load_if_exists=True,
        directions=[OBJECTIVES[o][1] for o in exp.search.objectives],
        sampler=make_sampler(exp.search.sampler, exp.seed, bool(exp.search.constraints),
                             exp.search.population))
    if exp.search.enqueue and not study.trials:  # a new study: its baselines go first
        for params in exp.search.enqueue:
            study.enqueue_trial(params)
    return study


def run_search(exp: ExperimentConfig, data: Dataset, run_dir: Path,
               progress: Callable[[str], None] = print, storage: str | None = None,
               total: bool = False, evaluator: Evaluator | None = None) -> optuna.Study:
    """Run `exp.search.trials` trials (with `total`: until the study has that many completed,
    which is what resuming and several workers want). `evaluator` serves the experiment's
    accelerator (default: the configured fidelity); searched accelerators get their own."""
    study = open_study(exp, run_dir, storage)
    base = load_accel_config(exp.accelerator)
    evaluators = {base.name: evaluator or get_evaluator(exp.search.fidelity, base,
                                                        exp.search.eval_images)}
    space, train_cfg = exp.search.space, exp.search.train
    parent = shared_parent(exp, data, run_dir, progress) if exp.search.shared_parent else None
    if parent is not None:
        train_cfg = replace(train_cfg, pretrain_epochs=0)
    cache = EvalCache()

    def evaluate(trial: optuna.Trial, model: QuantNet, config: AccelConfig) -> dict:
        if config.name not in evaluators:
            evaluators[config.name] = get_evaluator(exp.search.fidelity, config,
                                                    exp.search.eval_images)
        evaluator = evaluators[config.name]
        key = cache_key(model, asdict(model.quant_spec()), data.x_train[:CALIBRATION_IMAGES],
                        config.to_dict(), f"{evaluator.name}:{data.name}:{exp.search.eval_images}")
        cached = cache.get(key)
        if cached is not None:  # e.g. a killed trial's model, trained again identically
            progress(f"trial {trial.number}: evaluation cache hit")
            return cached
        try:
            metrics = evaluator.evaluate(model, data).as_dict()
        except MemoryFitError as exc:  # a point of the space this config cannot hold
            trial.set_user_attr("infeasible", str(exc))
            progress(f"trial {trial.number}: pruned, does not fit {config.name}: {exc}")
            raise optuna.TrialPruned(str(exc)) from None
        cache.put(key, metrics)
        return metrics

    def objective(trial: optuna.Trial) -> list[float]:
        candidate, accel_params = space.suggest(trial)
        config = space.accel_config(base, accel_params)
        twin_key = json.dumps({"candidate": candidate.to_dict(), "accelerator": config.name})
        trial.set_user_attr("key", twin_key)
        trial.set_user_attr("candidate", candidate.to_dict())
        trial.set_user_attr("description", candidate.describe())
        trial.set_user_attr("accelerator", config.name)
        where = f" on {config.name}" if accel_params else ""
        twin = _finished_twin(study, twin_key)
        if twin is not None:  # training is seeded: the same candidate gives the same model
            metrics = twin.user_attrs["metrics"]
            progress(f"trial {trial.number}: {candidate.describe()}{where}: as trial "
                     f"{twin.number}, not trained again")
        else:
            start = "the shared parent" if parent is not None else f"{train_cfg.pretrain_epochs} float"
            progress(f"trial {trial.number}: {candidate.describe()}{where}: training "
                     f"{start} + {train_cfg.epochs} QAFT epochs")
            model = build_model(candidate, data.input_shape, data.classes, exp.seed)
            if parent is not None:
                model.load_state_dict(parent)
            model = train(model, data, train_cfg, progress=lambda m: progress(f"  {m}"))
            save_model(model, run_dir / "models" / f"trial{trial.number}.pt")
            metrics = evaluate(trial, model, config)
            progress(f"trial {trial.number}: {summary(Metrics.from_dict(metrics))}")
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("constraints", [
            (bound - metrics[OBJECTIVES[o][0]]) if kind == "min" else
            (metrics[OBJECTIVES[o][0]] - bound) for o, kind, bound in exp.search.constraints])
        return [float(metrics[OBJECTIVES[o][0]]) for o in exp.search.objectives]

    try:
        if total:
            done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
            if done < exp.search.trials:
                study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(
                    exp.search.trials, states=(optuna.trial.TrialState.COMPLETE,))])
        else:
            study.optimize(objective, n_trials=exp.search.trials)
    finally:
        cache.close()
    return study


def shared_parent(exp: ExperimentConfig, data: Dataset, run_dir: Path,
                  progress: Callable[[str], None] = print) -> dict:
    """The float weights of the space's one architecture, trained once per run directory
    (`pretrain_epochs`) and kept in models/parent.pt; workers that meet it missing train the
    same seeded parent and write it atomically."""
    path = run_dir / "models" / "parent.pt"
    if path.exists():
        return load_model(path, data.classes).state_dict()
    candidate = exp.search.space.parent()
    cfg = exp.search.train
    progress(f"shared parent: {candidate.describe()}: training {cfg.pretrain_epochs} float epochs")
    model = train(build_model(candidate, data.input_shape, data.classes, exp.seed), data,
                  replace(cfg, epochs=0), progress=lambda m: progress(f"  {m}"))
    save_model(model, path)
    return model.state_dict()


def save_model(model: QuantNet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A killed worker leaves no half-written model; workers writing one path at once (the
    # shared parent) each write their own temporary file.
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"candidate": model.candidate.to_dict(), "input_shape": model.input_shape,
                "ptq": model.ptq, "state_dict": model.state_dict()}, tmp)
    tmp.replace(path)


def load_model(path: Path, classes: int) -> QuantNet:
    """A trial's trained model, as `save_model` stored it."""
    saved = torch.load(path, weights_only=True)
    model = build_model(Candidate.from_dict(saved["candidate"]), saved["input_shape"], classes)
    model.load_state_dict(saved["state_dict"])
    model.ptq = saved["ptq"]
    return model.eval()


def _finished_twin(study: optuna.Study, key: str) -> optuna.trial.FrozenTrial | None:
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.user_attrs.get("key") == key:
            return t
    return None


def constraints_of(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna's constraint values (<= 0: satisfied), stored by the objective."""
    return trial.user_attrs.get("constraints", [])


def summary(m: Metrics) -> str:
    where = {"rtl": "RTL", "golden": "golden model",
             "estimate": "integer reference + estimator"}.get(m.fidelity, m.fidelity)
    return (f"accuracy {m.accuracy:.3f} ({where}, {m.images} images), {m.cycles} cycles, "
            f"{m.latency_s * 1e6:.1f} us, {m.energy_j * 1e9:.1f} nJ, {m.size_bits} bits")


def trials_table(study: optuna.Study) -> str:
    pareto = {t.number for t in study.best_trials}
    rows = [f"{'trial':>5} {'accuracy':>8} {'cycles':>8} {'latency_us':>10} {'energy_nJ':>9} "
            f"{'size_bits':>9} pareto  candidate (blocks: kind k/stride->width w/a bits)"]
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            rows.append(f"{t.number:>5} {t.state.name}")
            continue
        m = t.user_attrs["metrics"]
        rows.append(f"{t.number:>5} {m['accuracy']:>8.3f} {m['cycles']:>8} "
                    f"{m['latency_s'] * 1e6:>10.1f} {m['energy_j'] * 1e9:>9.1f} "
                    f"{m['size_bits']:>9} {'*' if t.number in pareto else ' ':^6}  "
                    f"{t.user_attrs.get('description', '')}")
    return "\n".join(rows)
