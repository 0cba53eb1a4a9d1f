"""Experiment configs: YAML read once into validated frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path


from codesign.data import LOADERS
from codesign.errors import ConfigError
from codesign.evaluate import ResilienceSpec
from codesign.faults import SITES
from codesign.models import Candidate
from codesign.modes import SEARCH as FIDELITIES
from codesign.objectives import OBJECTIVES
from codesign.space import SearchSpace, load_space, parse_space
from codesign.train import TrainConfig
from hw.config import FieldReader, load_accel_config, read_yaml

SAMPLERS = ("nsga2", "gp", "botorch", "tpe", "ehvi", "random")


@dataclass(frozen=True)
class SearchConfig:
    trials: int
    sampler: str
    objectives: tuple[str, ...]
    space: SearchSpace
    train: TrainConfig  # per candidate: float pre-training, QAFT epochs, time limit
    eval_images: int | None
    fidelity: str = "rtl"  # rtl | estimate | screen (codesign.evaluate)
    constraints: tuple[tuple[str, str, float], ...] = ()  # (objective, "min" | "max", bound)
    enqueue: tuple[dict, ...] = ()  # parameters of trials to run first (e.g. 8-bit baselines)
    population: int = 50  # NSGA-II's generation size (Optuna's default)
    # Bits-only spaces: one float parent (pretrain_epochs, once per run), whose weights every
    # candidate fine-tunes from (epochs of QAFT) instead of pre-training its own.
    shared_parent: bool = False
    # Share of the training images held out to select candidates on; the test split is
    # measured only for the final front (codesign.search.score_front).
    validation: float = 0.1
    # Stop training a candidate whose hardware cost (exact before training) and best reachable
    # accuracy (now + the most any finished trial gained from this epoch on) are dominated.
    prune: bool = True
    # A finished run directory whose measured candidates seed the sampler (priors: they are
    # not counted, not on this run's front).
    warm_start: str | None = None
    # Fault injection for the resilience objectives (codesign.evaluate.ResilienceSpec).
    resilience: ResilienceSpec = ResilienceSpec()
    # Wall-time budget of one search process: no trial starts after it (the running one ends).
    time_budget_s: float | None = None

    def resilience_spec(self) -> ResilienceSpec | None:
        """What the evaluators measure of resilience: nothing unless an objective or a
        constraint asks; the proxy alone unless `resilience` (injection) does."""
        wanted = set(self.objectives) | {c[0] for c in self.constraints}
        if not wanted & {"resilience", "resilience_proxy"}:
            return None
        return replace(self.resilience, measure="resilience" in wanted)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    dataset: str
    accelerator: str
    seed: int
    model: Candidate
    train: TrainConfig
    eval_images: int | None
    search: SearchConfig


def _int_list(r: FieldReader, field: str, lo: int = 1) -> tuple[int, ...]:
    value = r.get(field)
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= lo for v in value):
        raise r.fail(field, f"must be a non-empty list of integers >= {lo}, not {value!r}")
    return tuple(value)


def _optional_images(r: FieldReader, field: str) -> int | None:
    return None if r.get(field, None) is None else r.int(field, 1)


def parse_search(data, where: str, train: TrainConfig) -> SearchConfig:
    s = FieldReader(data, where)
    s.check_known(("trials", "sampler", "objectives", "constraints", "space", "pretrain_epochs",
                   "epochs", "time_limit_s", "eval_images", "fidelity", "enqueue",
                   "population", "shared_parent", "validation", "prune", "warm_start",
                   "resilience", "two_step", "time_budget_s"))
    fidelity = s.choice("fidelity", FIDELITIES, "rtl", "fidelity")
    sampler = s.choice("sampler", SAMPLERS, "nsga2", "sampler")
    objectives = s.get("objectives")
    if not isinstance(objectives, list) or not objectives \
            or any(not isinstance(o, str) or o not in OBJECTIVES for o in objectives):
        raise s.fail("objectives", f"must be a list drawn from {', '.join(OBJECTIVES)}, "
                                   f"not {objectives!r}")
    if len(set(objectives)) != len(objectives):
        raise s.fail("objectives", f"lists an objective twice: {objectives!r}")
    space = s.get("space")
    if isinstance(space, str):
        space = load_space(space)
    elif isinstance(space, dict):
        space = parse_space(space, f"{where}: space")
    else:
        raise s.fail("space", f"must name a search space (configs/search/NAME.yaml or a path) "
                              f"or hold one inline, not {space!r}")
    limit = s.get("time_limit_s", train.time_limit_s)
    per_trial = replace(train, epochs=s.int("epochs", 0, default=train.epochs),
                        pretrain_epochs=s.int("pretrain_epochs", 0, default=0),
                        time_limit_s=None if limit is None else s.number("time_limit_s"),
                        two_step=_flag(s, "two_step", train.two_step))
    if per_trial.epochs + per_trial.pretrain_epochs == 0:
        raise s.fail("epochs", "a candidate needs pretrain_epochs or epochs > 0")
    c = FieldReader(s.get("constraints", {}) or {}, f"{where}: constraints")
    c.check_known(tuple(OBJECTIVES))
    constraints = []
    for objective in c.data:
        bound = FieldReader(c.get(objective), f"{where}: constraints: {objective}")
        bound.check_known(("min", "max"))
        if not bound.data:
            raise c.fail(objective, "give a bound: {min: X} and/or {max: X}")
        constraints += [(objective, kind, bound.number(kind)) for kind in bound.data]
    enqueue = s.get("enqueue", []) or []
    if not isinstance(enqueue, list) or not all(isinstance(e, dict) for e in enqueue):
        raise s.fail("enqueue", f"must be a list of {{parameter: value}} mappings, not {enqueue!r}")
    for i, fixed in enumerate(enqueue):
        space.check_fixed(fixed, f"{where}: enqueue[{i}]")
    shared_parent = s.get("shared_parent", False)
    if not isinstance(shared_parent, bool):
        raise s.fail("shared_parent", f"must be true or false, not {shared_parent!r}")
    if shared_parent:
        if not per_trial.pretrain_epochs or not per_trial.epochs:
            raise s.fail("shared_parent", "needs pretrain_epochs (the parent's float training) "
                                          "and epochs (each candidate's QAFT) > 0")
        try:
            space.parent()
        except ConfigError as exc:
            raise s.fail("shared_parent", str(exc)) from None
    validation = s.number("validation", default=0.1)
    if not 0 < validation < 1:
        raise s.fail("validation", f"the share of training images held out must be in (0, 1), "
                                   f"not {validation!r}")
    prune = s.get("prune", True)
    if not isinstance(prune, bool):
        raise s.fail("prune", f"must be true or false, not {prune!r}")
    warm = s.get("warm_start", None)
    if warm is not None and (not isinstance(warm, str)
                             or not (Path(warm) / "config.yaml").is_file()):
        raise s.fail("warm_start", f"must name a search run directory (with config.yaml), "
                                   f"not {warm!r}")
    budget = s.get("time_budget_s", None)
    if budget is not None:
        budget = s.number("time_budget_s")
        if budget == 0:
            raise s.fail("time_budget_s", "must be a number of seconds > 0, not 0")
    return SearchConfig(s.int("trials", 1), sampler, tuple(objectives), space, per_trial,
                        _optional_images(s, "eval_images"), fidelity, tuple(constraints),
                        tuple(enqueue), s.int("population", 2, default=50), shared_parent,
                        validation, prune, warm, _resilience(s), budget)


def _resilience(s: FieldReader) -> ResilienceSpec:
    r = FieldReader(s.get("resilience", {}) or {}, f"{s.where}: resilience")
    r.check_known(("ber", "injections", "sites", "images"))
    d = ResilienceSpec()
    ber = r.number("ber", default=d.ber)
    if not 0 < ber < 1:
        raise r.fail("ber", f"a bit-error rate is in (0, 1), not {ber!r}")
    sites = r.get("sites", list(d.sites))
    if not isinstance(sites, list) or not sites or any(x not in SITES for x in sites):
        raise r.fail("sites", f"must be a list drawn from {', '.join(SITES)}, not {sites!r}")
    return ResilienceSpec(ber, r.int("injections", 1, default=d.injections), tuple(sites),
                          r.int("images", 1, default=d.images))


def parse_experiment(data, where: str) -> ExperimentConfig:
    r = FieldReader(data, where)
    r.check_known(("name", "dataset", "accelerator", "seed", "model", "train", "eval_images",
                   "search"))
    dataset = r.choice("dataset", tuple(LOADERS), what="data set")
    m = FieldReader(r.get("model"), f"{where}: model")
    m.check_known(("widths", "strides", "kernel"))
    try:
        model = Candidate.plain(_int_list(m, "widths"), _int_list(m, "strides"),
                                m.int("kernel", 1, 7))
    except ConfigError as exc:
        raise ConfigError(f"{where}: model: {exc}") from None
    t = FieldReader(r.get("train"), f"{where}: train")
    t.check_known(("epochs", "batch_size", "lr", "time_limit_s", "pretrain_epochs", "two_step"))
    seed = r.int("seed", 0, default=0)
    train = TrainConfig(t.int("epochs", 0), t.int("batch_size", 1), t.number("lr"), seed,
                        None if t.get("time_limit_s", None) is None else t.number("time_limit_s"),
                        t.int("pretrain_epochs", 0, default=0),
                        _flag(t, "two_step"))
    search = parse_search(r.get("search"), f"{where}: search", train)
    name = r.name()  # the run directory's name and the study's
    accel = r.get("accelerator")
    if not isinstance(accel, str):
        raise r.fail("accelerator", f"must be a config name or path, not {accel!r}")
    try:
        search.space.check_accelerator(load_accel_config(accel))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return ExperimentConfig(name, dataset, accel, seed, model, train,
                            _optional_images(r, "eval_images"), search)


def read_config(path: str | Path):
    """An experiment config's YAML data, or a one-line error naming the file."""
    return read_yaml(path, "experiment config")


def load_experiment(path: str | Path) -> ExperimentConfig:
    return parse_experiment(read_config(path), str(path))


def _flag(r: FieldReader, name: str, default: bool = False) -> bool:
    value = r.get(name, default)
    if not isinstance(value, bool):
        raise r.fail(name, f"must be true or false, not {value!r}")
    return value
