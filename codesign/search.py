"""Multi-objective architecture search with Optuna: each trial trains a candidate and measures
it on the accelerator (the study it runs in, its storage and sampler: `codesign.study`); what a
trial costs and counts: checks before training, early stops, repeats, failures, the stall rule.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
import torch

from codesign.data import Dataset
from codesign.ehvi import Binding
from codesign.ensemble import ensemble_size_bits, ensemble_total
from codesign.errors import CodesignError
from codesign.evalcache import EvalCache, cache_key
from codesign.evaluate import (CALIBRATION_IMAGES, AcceleratorEvaluator, Evaluator,
                               compile_quantnet, get_evaluator)
from codesign.experiment import ExperimentConfig
from codesign.front import distinct_completed, feasible, held_out_score, pareto_trials
from codesign.metrics import Metrics
from codesign.models import Candidate, QuantNet, build_model
from codesign.objectives import HARDWARE, OBJECTIVES
from codesign.progress import bar
from codesign.study import enqueue_fresh, open_study, worker_id
from codesign.train import accuracy, train
from compiler.errors import MemoryFitError
from compiler.estimate import estimate
from hw.area import area, total_ge
from hw.energy import energy_of
from hw.config import AccelConfig, load_accel_config

optuna.logging.set_verbosity(optuna.logging.ERROR)  # trials report their own failures


class SearchStalled(CodesignError):
    """Trial after trial completed nothing new (each failed, did not fit, or repeated a
    finished candidate): the search stops rather than spin."""


def run_search(exp: ExperimentConfig, data: Dataset, run_dir: Path,
               progress: Callable[[str], None] = print, storage: str | None = None,
               total: bool = False, evaluator: Evaluator | None = None,
               worker: int = 0) -> optuna.Study:
    """Run until `exp.search.trials` more distinct candidates have completed (with `total`:
    until the study holds that many, which is what resuming and several workers want). A
    candidate that repeats a finished one is answered from it and not counted; one that fails
    is recorded as failed with its reason and the search goes on; a candidate that cannot fit
    the accelerator or meet a hardware constraint is pruned before any training. After
    `stall_limit` trials in a row that complete nothing new the search stops (`SearchStalled`).
    With `search.time_budget_s` no trial starts after that many seconds (the budget ends the
    search as the trial count does).
    `evaluator` serves the experiment's accelerator (default: the configured fidelity);
    searched accelerators get their own."""
    study = open_study(exp, run_dir, storage, worker)
    data = data.with_validation(exp.search.validation, exp.seed)  # select on validation
    base = load_accel_config(exp.accelerator)
    resilience = exp.search.resilience_spec()
    evaluators = {base.name: evaluator or get_evaluator(exp.search.fidelity, base,
                                                        exp.search.eval_images, resilience)}
    space, train_cfg = exp.search.space, exp.search.train
    parent = shared_parent(exp, data, run_dir, progress) if exp.search.shared_parent else None
    if parent is not None:
        train_cfg = replace(train_cfg, pretrain_epochs=0)
    cache = EvalCache(warn=lambda m: progress(f"warning: {m}"))
    wants_area = "area" in exp.search.objectives or any(
        c[0] == "area" for c in exp.search.constraints)
    areas: dict[str, float] = {}

    def accelerator_area(config: AccelConfig) -> float:
        """Synthesized once per config (minutes; then cached on disk by hw.area)."""
        if config.name not in areas:
            progress(f"area of {config.name}: Yosys synthesis (cached after the first run)")
            areas[config.name] = total_ge(area(config))
        return areas[config.name]
    target = exp.search.trials + (0 if total else len(distinct_completed(study)))
    stall_limit = max(8, exp.search.trials)
    attempt_limit = 20 * exp.search.trials + 20  # trials of this process, whatever they gave
    attempts: list[int] = []
    fruitless: list[tuple[str, str]] = []  # (kind, detail) of each trial since the last
    #                                          new completion

    def prune(trial: optuna.Trial, why: str, reason: str) -> None:
        trial.set_user_attr("infeasible", reason)
        progress(f"trial {trial.number}: pruned, {why}: {reason}")
        raise optuna.TrialPruned(reason)

    known_hw: dict[str, dict] = {}

    def hardware(candidate: Candidate, config: AccelConfig) -> dict:
        """Exact hardware objectives from the untrained model: its shapes and bit widths fix
        the program, so the estimator's counts are the trained model's. MemoryFitError if it
        cannot fit."""
        key = trial_key(candidate, config)
        if key in known_hw:
            return known_hw[key]
        model = build_model(candidate, data.input_shape, data.classes, exp.seed)
        net = compile_quantnet(model, config, data.x_train[:CALIBRATION_IMAGES])
        counters = estimate(net.program)
        k = candidate.ensemble  # members back to back, the shared prefix once
        cycles = int(ensemble_total({n: c["cycles"] for n, c in counters.items()}, net.layers, k))
        energy = ensemble_total({n: energy_of(c, config.energy, config.vector_width).total_j
                                 for n, c in counters.items()}, net.layers, k)
        hw = {"cycles": cycles, "latency_s": cycles / (config.clock_mhz * 1e6),
              "energy_j": energy,
              "size_bits": ensemble_size_bits(model, model.quant_spec(), k)}
        if wants_area:
            hw["area_ge"] = accelerator_area(config)
        known_hw[key] = hw
        return hw

    def missed_constraint(hw: dict) -> str | None:
        for o, kind, bound in exp.search.constraints:
            key = OBJECTIVES[o].field
            if key in hw and (hw[key] < bound if kind == "min" else hw[key] > bound):
                return f"{o} {hw[key]:.4g} {'<' if kind == 'min' else '>'} {kind} {bound:.4g}"
        return None

    def precheck(trial: optuna.Trial, candidate: Candidate, config: AccelConfig) -> dict | None:
        """Memory fit and hardware constraints, before any training."""
        try:
            hw = hardware(candidate, config)
        except MemoryFitError as exc:
            prune(trial, f"does not fit {config.name} (checked before training)", str(exc))
        except CodesignError:
            return None  # a value-dependent failure of an untrained model says nothing yet
        if missed := missed_constraint(hw):
            prune(trial, "misses a hardware constraint (checked before training)", missed)
        return hw

    if hasattr(study.sampler, "bind"):  # a sampler that uses exact hardware costs
        study.sampler.bind(sampler_binding(exp, data, base, hardware, missed_constraint))

    def evaluate(trial: optuna.Trial, model: QuantNet, config: AccelConfig) -> dict:
        metrics = measure(trial, model, config)
        # the area is the config's, not the evaluation's: added to cached entries too
        return {**metrics, "area_ge": accelerator_area(config)} if wants_area else metrics

    def measure(trial: optuna.Trial, model: QuantNet, config: AccelConfig) -> dict:
        if config.name not in evaluators:
            evaluators[config.name] = get_evaluator(exp.search.fidelity, config,
                                                    exp.search.eval_images, resilience)
        evaluator = evaluators[config.name]
        key = cache_key(model, asdict(model.quant_spec()), data.x_train[:CALIBRATION_IMAGES],
                        config.to_dict(), f"{evaluator.name}:{data.name}:{exp.search.eval_images}"
                        f":{data.held_out}:{exp.search.validation}:{exp.seed}:{resilience}"
                        f":ensemble{model.candidate.ensemble}")
        cached = cache.get(key)
        if cached is not None:  # e.g. a killed trial's model, trained again identically
            try:
                Metrics.from_dict(cached)
                progress(f"trial {trial.number}: evaluation cache hit")
                return cached
            except (TypeError, KeyError, ValueError):
                progress(f"trial {trial.number}: cache entry of another shape; evaluating anew")
        try:
            metrics = evaluator.evaluate(model, data).as_dict()
        except MemoryFitError as exc:  # a point of the space this config cannot hold
            prune(trial, f"does not fit {config.name}", str(exc))
        cache.put(key, metrics)
        return metrics

    def objective(trial: optuna.Trial) -> list[float]:
        trial.set_user_attr("worker", worker_id())
        candidate, accel_params = space.suggest(trial)
        config = space.accel_config(base, accel_params)
        twin_key = trial_key(candidate, config)
        trial.set_user_attr("key", twin_key)
        trial.set_user_attr("candidate", candidate.to_dict())
        trial.set_user_attr("description", candidate.describe())
        trial.set_user_attr("accelerator", config.name)
        where = f" on {config.name}" if accel_params else ""
        twin = _finished_twin(study, twin_key) or _awaited_twin(study, trial, twin_key, progress)
        if twin is not None and "stopped_early" in twin.user_attrs:  # seeded: stops alike
            trial.set_user_attr("duplicate_of", twin.number)
            progress(f"trial {trial.number}: {candidate.describe()}{where}: as trial "
                     f"{twin.number}, stopped early (not counted)")
            return list(twin.values)
        if twin is not None:  # training is seeded: the same candidate gives the same model
            metrics = twin.user_attrs["metrics"]
            trial.set_user_attr("duplicate_of", twin.number)
            progress(f"trial {trial.number}: {candidate.describe()}{where}: as trial "
                     f"{twin.number}, not trained again (not counted)")
        else:
            hw = precheck(trial, candidate, config)
            model = build_model(candidate, data.input_shape, data.classes, exp.seed)
            curve: list = []
            start = ("the shared parent" if parent is not None
                     else f"{train_cfg.pretrain_epochs} float")
            progress(f"trial {trial.number}: {candidate.describe()}{where}: training "
                     f"{start} + {train_cfg.epochs} QAFT epochs")
            if parent is not None:
                model.load_state_dict(parent)
            def stop_if_dominated(phase, epoch, acc, hw=hw, curve=curve):
                curve.append([phase, epoch, acc])
                trial.set_user_attr("curve", curve)
                found = dominated_so_far(study, exp, hw, phase, epoch, acc)
                if found:
                    raise _Dominated(f"at {phase} epoch {epoch}: {found[0]}", found[1])
            try:
                model = train(model, data, train_cfg, progress=lambda m: progress(f"  {m}"),
                              on_epoch=stop_if_dominated if exp.search.prune and hw else None)
            except _Dominated as stop:
                # its bound is told to the sampler (it learns where not to look); the results
                # do not count it (front, budget, hypervolume)
                trial.set_user_attr("stopped_early", stop.reason)
                progress(f"trial {trial.number}: training stopped {stop.reason}")
                return stop.values
            save_model(model, run_dir / "models" / f"trial{trial.number}.pt")
            # a candidate its budget left near chance did not train: the report counts them
            trained = accuracy(model, data)
            trial.set_user_attr("trained_accuracy", trained)
            trial.set_user_attr("untrained", trained <= 2 / data.classes)
            metrics = evaluate(trial, model, config)
            progress(f"trial {trial.number}: validation {summary(Metrics.from_dict(metrics))}")
        values = [float(metrics[OBJECTIVES[o].field]) for o in exp.search.objectives]
        if not all(np.isfinite(values)):
            raise CodesignError(f"objective values {values} are not finite")
        trial.set_user_attr("metrics", metrics)
        for key, value in dashboard_attrs(metrics).items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("constraints", [
            (bound - metrics[OBJECTIVES[o].field]) if kind == "min" else
            (metrics[OBJECTIVES[o].field] - bound) for o, kind, bound in exp.search.constraints])
        return values

    def guarded(trial: optuna.Trial) -> list[float]:
        try:
            return objective(trial)
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as exc:  # recorded with its reason; the search goes on
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", reason)
            progress(f"trial {trial.number}: failed: {reason}")
            raise

    def account(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attempts.append(trial.number)
        if trial.state == optuna.trial.TrialState.COMPLETE \
                and "duplicate_of" not in trial.user_attrs:
            fruitless.clear()  # a new candidate measured, or one known not to matter
        else:
            attrs = trial.user_attrs
            if "duplicate_of" in attrs:
                why = ("repeated a finished candidate", f"as trial {attrs['duplicate_of']}")
                enqueue_fresh(study, space, len(attempts))  # a model-based sampler would
                #                                              propose the same point again
            elif "infeasible" in attrs:
                why = ("did not fit the accelerator or meet a constraint", attrs["infeasible"])
            elif "error" in attrs:
                why = (f"failed ({attrs['error'].split(':')[0]})", attrs["error"])
            else:
                why = (trial.state.name.lower(), "")
            fruitless.append(why)
        if len(distinct_completed(study)) >= target or len(fruitless) >= stall_limit \
                or len(attempts) >= attempt_limit:
            study.stop()

    shown = bar(target, f"search {exp.name}: candidates measured")
    shown.update(len(distinct_completed(study)))

    def show(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        shown.update(len(distinct_completed(study)) - shown.n)

    try:
        if len(distinct_completed(study)) < target:
            study.optimize(guarded, callbacks=[account, show], catch=(Exception,),
                           timeout=exp.search.time_budget_s)
    finally:
        shown.close()
        cache.close()
    if len(attempts) >= attempt_limit and len(fruitless) < stall_limit \
            and len(distinct_completed(study)) < target:
        raise SearchStalled(
            f"search {exp.name}: {len(attempts)} trials gave only "
            f"{len(distinct_completed(study))} of {target} distinct measured candidates (most "
            f"were stopped early as dominated or repeated one); the study keeps every trial")
    if len(fruitless) >= stall_limit:
        kinds = {}
        for kind, _ in fruitless:
            kinds[kind] = kinds.get(kind, 0) + 1
        raise SearchStalled(
            f"search {exp.name}: {len(fruitless)} trials in a row completed nothing new ("
            f"{', '.join(f'{n} {k}' for k, n in kinds.items())}); last: "
            f"{fruitless[-1][1][:300]}. "
            f"{len(distinct_completed(study))} of {target} distinct candidates completed; "
            f"the study keeps every trial (--resume continues)")
    return study


def trial_key(candidate: Candidate, config: AccelConfig) -> str:
    """What makes two trials the same: the candidate on the same accelerator."""
    return json.dumps({"candidate": candidate.to_dict(), "accelerator": config.name})


def sampler_binding(exp: ExperimentConfig, data: Dataset, base: AccelConfig,
                    hardware: Callable, missed_constraint: Callable) -> Binding:
    """What a hardware-aware sampler needs of this search: each candidate's key, encoding
    and counted size (cheap), and its exact hardware objectives (a compilation)."""
    space = exp.search.space

    def resolve(params: dict):
        candidate, accel = space.suggest(optuna.trial.FixedTrial(params))
        return candidate, accel, space.accel_config(base, accel)

    def describe(params: dict) -> tuple[str, list[float], float]:
        candidate, accel, config = resolve(params)
        model = build_model(candidate, data.input_shape, data.classes, exp.seed)
        size = ensemble_size_bits(model, model.quant_spec(), candidate.ensemble)
        return trial_key(candidate, config), space.encode(candidate, accel), float(size)

    def exact(params: dict) -> dict | None:
        candidate, _, config = resolve(params)
        try:
            hw = hardware(candidate, config)
        except Exception:  # cannot fit, or fails to compile untrained: not proposed (drawn
            return None  # at random, the trial's own check reports why)
        return None if missed_constraint(hw) else hw

    return Binding(tuple(exp.search.objectives), space.distributions(), describe, exact)


PRUNE_MIN_CURVES = 3  # finished trials whose learning curves bound the gain still to come
PRUNE_MARGIN = 0.02  # accuracy added to the largest gain seen


def dominated_so_far(study: optuna.Study, exp: ExperimentConfig, hw: dict, phase: str,
                     epoch: int, acc: float) -> tuple[str, list[float]] | None:
    """Why a candidate in training cannot reach the front and its best reachable objective
    values, or None. Its hardware objectives are
    exact before training (the estimator on its shapes and bit widths); its accuracy can still
    grow by at most the largest gain any finished trial made from the same epoch to its
    measured accuracy, plus a margin. Dominated even so: no use training on."""
    keys = [OBJECTIVES[o].field for o in exp.search.objectives]
    if "accuracy" not in keys or any(k != "accuracy" and k not in hw for k in keys):
        return None
    gains = []
    for t in distinct_completed(study):
        at = {(p, e): a for p, e, a in t.user_attrs.get("curve", [])}
        if (phase, epoch) in at and "metrics" in t.user_attrs:
            gains.append(t.user_attrs["metrics"]["accuracy"] - at[(phase, epoch)])
    if len(gains) < PRUNE_MIN_CURVES:
        return None
    best = min(1.0, acc + max(0.0, max(gains)) + PRUNE_MARGIN)
    mine = {**hw, "accuracy": best}
    sign = {k: -1.0 if OBJECTIVES[o].maximize else 1.0
            for o, k in zip(exp.search.objectives, keys)}
    loss = np.array([sign[k] * mine[k] for k in keys])
    for t in pareto_trials(study):
        other = np.array([sign[k] * v for k, v in zip(keys, t.values)])
        if np.all(other <= loss) and np.any(other < loss):
            return (f"even at accuracy {best:.3f} ({acc:.3f} now, at most "
                    f"{max(gains):+.3f} more seen in {len(gains)} trials) trial {t.number} "
                    f"is as good or better in every objective",
                    [float(mine[k]) for k in keys])
    return None


class _Dominated(Exception):
    def __init__(self, reason: str, values: list[float]):
        super().__init__(reason)
        self.reason, self.values = reason, values


def score_front(exp: ExperimentConfig, data: Dataset, run_dir: Path, study: optuna.Study,
               progress: Callable[[str], None] = print) -> None:
    """Accuracy of each Pareto model on the test split (integer semantics: the RTL's, bit for
    bit), stored in the study (`held_out_score`); the search itself never saw these images."""
    base = load_accel_config(exp.accelerator)
    for t in pareto_trials(study):
        if held_out_score(study, t) is not None:
            continue
        candidate, accel_params = exp.search.space.suggest(optuna.trial.FixedTrial(t.params))
        config = exp.search.space.accel_config(base, accel_params)
        path = run_dir / "models" / f"trial{t.user_attrs.get('duplicate_of', t.number)}.pt"
        if not path.exists():
            progress(f"trial {t.number}: no saved model ({path}); test accuracy not measured")
            continue
        model = load_model(path, data.classes)
        m = AcceleratorEvaluator(config, exp.search.eval_images, "estimate").evaluate(model, data)
        study.set_user_attr(f"test:{t.number}", {"accuracy": m.accuracy, "images": m.images})
        progress(f"trial {t.number}: test accuracy {m.accuracy:.3f} ({m.images} test images)")


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


TWIN_POLL_S = 2.0  # how often a trial looks whether the running twin it waits for finished
KEYLESS_POLL_S = 0.2  # ... whether the earlier running trials have drawn their candidates
KEYLESS_WAIT_S = 180.0  # a trial killed while drawing stays running without one: not forever


def _awaited_twin(study: optuna.Study, trial: optuna.Trial, key: str,
                  progress) -> optuna.trial.FrozenTrial | None:
    """The same candidate running in another process (an earlier trial): waited for, so that
    processes sharing a study never train one candidate twice; None when there is none or it
    ends without a result (this trial then trains it)."""
    running = optuna.trial.TrialState.RUNNING
    # An earlier trial still drawing its candidate has no key yet: decide once it has one, so
    # the earlier of two trials of one candidate never starts training unseen by the later.
    deadline = time.monotonic() + KEYLESS_WAIT_S
    while True:
        earlier = [t for t in study.get_trials(deepcopy=False, states=(running,))
                   if t.number < trial.number]
        if all("key" in t.user_attrs for t in earlier) or time.monotonic() > deadline:
            break
        time.sleep(KEYLESS_POLL_S)
    others = [t for t in earlier if t.user_attrs.get("key") == key]
    if not others:
        return None
    number = others[0].number
    progress(f"trial {trial.number}: the same candidate as trial {number}, running in "
             f"{others[0].user_attrs.get('worker', 'another process')}: waiting for it")
    while True:
        t = study._storage.get_trial(others[0]._trial_id)
        if t.state != running:
            return t if t.state == optuna.trial.TrialState.COMPLETE else None
        time.sleep(TWIN_POLL_S)


def _finished_twin(study: optuna.Study, key: str) -> optuna.trial.FrozenTrial | None:
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.user_attrs.get("key") == key and "warm_start" not in t.user_attrs:
            return t  # (a prior from another run may differ in data or accelerator)
    return None


def summary(m: Metrics) -> str:
    where = {"rtl": "RTL", "golden": "golden model",
             "estimate": "integer reference + estimator"}.get(m.fidelity, m.fidelity)
    ccr = "" if m.ccr is None else \
        f", CCR {m.ccr:.3f} ({m.ccr_fidelity}; proxy {m.ccr_proxy:.3f})"
    return (f"accuracy {m.accuracy:.3f} ({where}, {m.images} images), {m.cycles} cycles, "
            f"{m.latency_s * 1e6:.1f} us, {m.energy_j * 1e9:.1f} nJ, {m.size_bits} bits{ccr}")


def dashboard_attrs(metrics: dict) -> dict:
    """Flat, readable copies of a trial's figures for optuna-dashboard (which shows user
    attributes as text): where they come from and one line per layer."""
    return {"fidelity": metrics.get("fidelity"),
            "per_layer": [f"{la['name']} ({la.get('kind', '')}, bits {la.get('bits', '')}): "
                          f"{la['cycles']} cycles, {la['energy_j'] * 1e9:.3f} nJ"
                          for la in metrics.get("layers", ())]}


def trials_table(study: optuna.Study) -> str:
    pareto = {t.number for t in pareto_trials(study)}
    ccr = any(t.user_attrs.get("metrics", {}).get("ccr") is not None for t in study.trials)
    columns = [OBJECTIVES[o] for o in ("accuracy", *HARDWARE,
                                       *(("resilience", "resilience_proxy") if ccr else ()))]
    rows = [f"{'trial':>5} " + " ".join(f"{o.name:>{o.column}}" for o in columns)
            + " pareto  candidate (blocks: kind k/stride->width w/a bits)"]
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            why = t.user_attrs.get("infeasible") or t.user_attrs.get("error") or ""
            rows.append(f"{t.number:>5} {t.state.name:<8} {why[:100]}")
            continue
        if "stopped_early" in t.user_attrs or "metrics" not in t.user_attrs:
            # (a repeat of a stopped trial: no metrics of its own)
            why = t.user_attrs.get("stopped_early") or \
                f"as trial {t.user_attrs.get('duplicate_of')}"
            rows.append(f"{t.number:>5} STOPPED  {why[:100]}")
            continue
        m = t.user_attrs["metrics"]
        cells = [_cell(o, m) for o in columns]
        rows.append(f"{t.number:>5} " + " ".join(f"{c:>{o.column}}" for c, o in zip(cells, columns))
                    + f" {'*' if t.number in pareto else ' ':^6}  "
                    f"{t.user_attrs.get('description', '')}{_note(t)}")
    return "\n".join(rows)


def _cell(o, m: dict) -> str:
    """An objective's value in the trials table; an injected CCR that screening replaced by
    the proxy's is marked ~."""
    text = o.show(m.get(o.field))
    return "~" + text if o.field == "ccr" and m.get("ccr_fidelity") == "proxy" else text


def _note(t: optuna.trial.FrozenTrial) -> str:
    if "duplicate_of" in t.user_attrs:
        return f"  (as trial {t.user_attrs['duplicate_of']}, not counted)"
    return "" if feasible(t) else "  (misses a constraint)"
