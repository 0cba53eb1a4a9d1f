"""The Optuna study a search runs in: its storage, its sampler and that sampler's seed, recovery
from killed processes (orphaned trials, baselines queued again), warm starts from an earlier run,
and fresh candidates for a sampler stuck on a finished point."""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path

import numpy as np
import optuna

from codesign.ehvi import HardwareAwareSampler
from codesign.errors import CodesignError
from codesign.experiment import ExperimentConfig
from codesign.front import distinct_completed
from codesign.objectives import OBJECTIVES


def make_sampler(name: str, seed: int, constrained: bool = False, population: int = 50,
                 objectives: int = 2) -> optuna.samplers.BaseSampler:
    """The Optuna sampler `name` (nsga2, gp, botorch, tpe, ehvi, random), seeded; with
    `constrained`, nsga2, gp, botorch and tpe honour the trials' constraint values
    (`constraints_of`)."""
    c = {"constraints_func": constraints_of} if constrained else {}
    with warnings.catch_warnings():  # constraints_func is experimental in some samplers
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {"nsga2": lambda: optuna.samplers.NSGAIISampler(
                    seed=seed, population_size=population, **c),
                "gp": lambda: optuna.samplers.GPSampler(seed=seed, **c),  # multi-objective BO
                "botorch": lambda: _botorch(seed, objectives, c),
                "tpe": lambda: optuna.samplers.TPESampler(seed=seed, **c),
                "ehvi": lambda: HardwareAwareSampler(seed=seed),  # uses exact hardware costs
                "random": lambda: optuna.samplers.RandomSampler(seed=seed)}[name]()


BOTORCH_STARTUP = 8  # random trials before the GP takes over


def _botorch(seed: int, objectives: int, constraints: dict) -> optuna.samplers.BaseSampler:
    """BoTorch through Optuna's integration: qLogNEHVI for several objectives (numerically
    steadier than qNEHVI; scaled and sized in `codesign.bo`), LogEI for one."""
    from botorch.exceptions import InputDataWarning, OptimizationWarning
    from optuna_integration import BoTorchSampler
    from optuna_integration.botorch import logei_candidates_func

    from codesign.bo import qlognehvi_candidates
    for noise in (InputDataWarning, OptimizationWarning):  # per proposal; the search goes on
        warnings.filterwarnings("ignore", category=noise)
    propose = qlognehvi_candidates if objectives > 1 else logei_candidates_func

    def timed(*args):  # the time spent choosing, as the `ehvi` sampler reports it
        start = time.perf_counter()
        try:
            return propose(*args)
        finally:
            sampler.proposal_seconds += time.perf_counter() - start
    sampler = BoTorchSampler(candidates_func=timed, n_startup_trials=BOTORCH_STARTUP, seed=seed,
                             independent_sampler=optuna.samplers.RandomSampler(seed=seed),
                             **constraints)
    sampler.proposal_seconds = 0.0
    return sampler


def open_storage(run_dir: Path, url: str | None = None) -> optuna.storages.RDBStorage:
    """The study's storage: SQLite in the run directory, or a database URL shared by many
    machines. Workers send heartbeats, so a killed worker's trial is failed, not left running."""
    if url is None:  # the path escaped: '%' or '?' in a directory name must stay its own
        from sqlalchemy.engine import URL
        url = URL.create("sqlite", database=str((run_dir / "study.db").resolve())
                         ).render_as_string(hide_password=False)
    with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(SCHEMA_RACE_TRIES):
            try:
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=30, grace_period=90,
                    engine_kwargs={"connect_args": {"timeout": 60}}
                    if url.startswith("sqlite") else None)
            except Exception as exc:  # SQLAlchemy: unknown dialect, bad URL, no server
                text = str(exc)
                # processes that start together on a new database race to create its
                # schema: the losers find it made and open it on a second try
                if attempt + 1 < SCHEMA_RACE_TRIES and any(
                        m in text for m in ("alembic_version", "already exists", "locked")):
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise CodesignError(f"storage {url!r}: cannot open it ({type(exc).__name__}: "
                                    f"{text.splitlines()[0][:300]})") from None


SCHEMA_RACE_TRIES = 8


def sampler_seed(seed: int, trials_before: int, worker: int) -> int:
    """The configured seed for a new study's first process; every resume and every worker
    its own stream, so that none repeats another's draws."""
    if trials_before == 0 and worker == 0:
        return seed
    return int(np.random.SeedSequence([seed, trials_before, worker]).generate_state(1)[0])


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def seed_per_trial(sampler: optuna.samplers.BaseSampler, seed: int
                   ) -> optuna.samplers.BaseSampler:
    """The sampler's random streams restart for every trial from (seed, trial number), which
    the storage hands out once across every process of a study: processes that start together
    on one new study never draw alike, and a trial's draws follow from its number (recorded
    as its `sampler_seed`)."""
    before = sampler.before_trial

    def before_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        s = trial_seed(seed, trial.number)
        _reseed(sampler, s)
        study._storage.set_trial_system_attr(trial._trial_id, "sampler_seed", s)
        before(study, trial)

    sampler.before_trial = before_trial  # an instance hook: the sampler keeps its own type
    return sampler


def _reseed(sampler, seed: int) -> None:
    """Seed the random streams of Optuna's samplers and of this project's."""
    rng = getattr(sampler, "_rng", None)
    if isinstance(rng, np.random.Generator):
        sampler._rng = np.random.default_rng(seed)
    elif rng is not None and hasattr(rng, "rng"):  # Optuna's LazyRandomState
        rng.rng.seed(seed % 2**32)
    if isinstance(getattr(sampler, "_seed", None), int):
        sampler._seed = seed % 2**32
    for sub in ("_random_sampler", "_independent_sampler", "_random"):
        if getattr(sampler, sub, None) is not None:
            _reseed(getattr(sampler, sub), seed + 1)


def worker_id() -> str:
    """host:pid of this process, stored on each trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str) -> bool:
    """Whether the process that claimed a trial (host:pid) may still run it: only a process
    on this host can be checked; one elsewhere counts as alive (its heartbeat decides)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_orphaned_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose process on this host is gone (a killed worker; its
    heartbeat may not have expired yet). Returns their numbers."""
    orphans = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if worker and not _alive(worker):
            study._storage.set_trial_user_attr(t._trial_id, "error",
                                               f"its process {worker} ended mid-trial")
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            orphans.append(t.number)
    return orphans


def _enqueue_baselines(study: optuna.Study, baselines: list[dict]) -> None:
    """Each configured baseline waits in the queue until a trial of it completes (a kill
    mid-baseline puts it back)."""
    def same(t, params):
        fixed = t.system_attrs.get("fixed_params") or t.params
        return all(fixed.get(k) == v for k, v in params.items())

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING,
              optuna.trial.TrialState.RUNNING)
    live = study.get_trials(deepcopy=False, states=states)
    for params in baselines:
        if not any(same(t, params) for t in live):
            study.enqueue_trial(params)


def open_study(exp: ExperimentConfig, run_dir: Path, storage: str | None = None,
               worker: int = 0) -> optuna.Study:
    """The experiment's study, created on first use (before workers start, so that they do
    not race to create the schema); trials orphaned by a killed process are failed and the
    baselines queued again until they complete. Its sampler draws from a stream of its own
    (`sampler_seed`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=exp.name, storage=open_storage(run_dir, storage), load_if_exists=True,
        directions=[OBJECTIVES[o].direction for o in exp.search.objectives])
    if study.metric_names is None:  # the axes' names in optuna-dashboard
        with warnings.catch_warnings():  # experimental in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVES[o].label for o in exp.search.objectives])
    fail_orphaned_trials(study)
    before = len(study.get_trials(deepcopy=False))
    study.sampler = seed_per_trial(make_sampler(
        exp.search.sampler, sampler_seed(exp.seed, before, worker), bool(exp.search.constraints),
        exp.search.population, len(exp.search.objectives)), exp.seed)
    if exp.search.warm_start and before == 0:
        _warm_start(study, exp, Path(exp.search.warm_start))
    if exp.search.enqueue:
        _enqueue_baselines(study, list(exp.search.enqueue))
    return study


def enqueue_fresh(study: optuna.Study, space, salt: int, tries: int = 32) -> None:
    """Queue a random candidate no trial has measured, so that a sampler stuck on a finished
    point moves on (a GP's acquisition on a discrete space proposes it again and again)."""
    known = [json.loads(t.user_attrs["key"])["candidate"]
             for t in study.get_trials(deepcopy=False) if "key" in t.user_attrs]
    draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(
        seed=sampler_seed(len(study.trials), salt, 1)))
    for _ in range(tries):
        trial = draws.ask()
        candidate, _ = space.suggest(trial)
        if json.loads(json.dumps(candidate.to_dict())) not in known:  # as the keys hold it
            study.enqueue_trial(trial.params)
            return


def _warm_start(study: optuna.Study, exp: ExperimentConfig, source: Path) -> int:
    """Copy the measured candidates of an earlier run into a new study as priors (marked
    `warm_start`), those whose parameters this space can draw and whose objectives match.
    Returns how many."""
    from codesign.experiment import load_experiment
    old_exp = load_experiment(source / "config.yaml")
    if tuple(old_exp.search.objectives) != tuple(exp.search.objectives):
        raise CodesignError(f"warm_start {source}: its objectives {old_exp.search.objectives} "
                            f"differ from this search's {exp.search.objectives}")
    old = optuna.load_study(study_name=old_exp.name, storage=open_storage(source))
    dists = exp.search.space.distributions()  # one fixed set
    def drawable(k, v) -> bool:
        try:
            return dists[k]._contains(dists[k].to_internal_repr(v))
        except (ValueError, TypeError):
            return False

    n = 0
    for t in distinct_completed(old):
        if set(t.params) != set(dists) or not all(drawable(k, v) for k, v in t.params.items()):
            continue
        attrs = {k: v for k, v in t.user_attrs.items() if k not in ("worker",)}
        study.add_trial(optuna.trial.create_trial(
            params=t.params, distributions=dists, values=t.values,
            user_attrs={**attrs, "warm_start": f"{source}#{t.number}"}))
        n += 1
    return n


def constraints_of(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna's constraint values (<= 0: satisfied), stored by the objective."""
    return trial.user_attrs.get("constraints", [])
