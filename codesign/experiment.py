"""Experiment configs: YAML read once into validated frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from codesign.data import LOADERS
from codesign.errors import ConfigError
from codesign.models import Candidate
from codesign.train import TrainConfig
from hw.config import FieldReader

OBJECTIVES = {  # name -> (Metrics field, Optuna direction)
    "accuracy": ("accuracy", "maximize"),
    "cycles": ("cycles", "minimize"),
    "latency": ("latency_s", "minimize"),
    "energy": ("energy_j", "minimize"),
    "size": ("size_bits", "minimize"),
}
SAMPLERS = ("nsga2", "gp", "tpe", "random")
FIDELITIES = ("rtl", "estimate", "screen")


@dataclass(frozen=True)
class SearchConfig:
    trials: int
    sampler: str
    objectives: tuple[str, ...]
    epochs: int
    eval_images: int | None
    widths: tuple[tuple[int, ...], ...]
    fidelity: str = "rtl"  # rtl | estimate | screen (codesign.evaluate)
    bits: tuple[tuple[int, int], ...] = ((8, 8),)  # (weights, activations) choices, layers 2..


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


def parse_experiment(data, where: str) -> ExperimentConfig:
    r = FieldReader(data, where)
    r.check_known(("name", "dataset", "accelerator", "seed", "model", "train", "eval_images",
                   "search"))
    dataset = r.get("dataset")
    if dataset not in LOADERS:
        raise r.fail("dataset", f"unknown data set {dataset!r}; allowed: {', '.join(LOADERS)}")
    m = FieldReader(r.get("model"), f"{where}: model")
    m.check_known(("widths", "strides", "kernel"))
    try:
        model = Candidate(_int_list(m, "widths"), _int_list(m, "strides"), m.int("kernel", 1, 7))
    except ConfigError as exc:
        raise ConfigError(f"{where}: model: {exc}") from None
    t = FieldReader(r.get("train"), f"{where}: train")
    t.check_known(("epochs", "batch_size", "lr", "time_limit_s"))
    seed = r.int("seed", 0, default=0)
    train = TrainConfig(t.int("epochs", 1), t.int("batch_size", 1), t.number("lr"), seed,
                        None if t.get("time_limit_s", None) is None else t.number("time_limit_s"))
    s = FieldReader(r.get("search"), f"{where}: search")
    s.check_known(("trials", "sampler", "objectives", "epochs", "eval_images", "widths",
                   "fidelity", "bits"))
    bits = s.get("bits", [[8, 8]])
    if not isinstance(bits, list) or not bits or not all(
            isinstance(p, list) and len(p) == 2 and all(b in (1, 2, 8) for b in p) for p in bits):
        raise s.fail("bits", f"must be a list of [weights, activations] pairs with bits in "
                             f"1, 2, 8, not {bits!r}")
    fidelity = s.get("fidelity", "rtl")
    if fidelity not in FIDELITIES:
        raise s.fail("fidelity", f"unknown fidelity {fidelity!r}; allowed: {', '.join(FIDELITIES)}")
    sampler = s.get("sampler", "nsga2")
    if sampler not in SAMPLERS:
        raise s.fail("sampler", f"unknown sampler {sampler!r}; allowed: {', '.join(SAMPLERS)}")
    objectives = s.get("objectives")
    if not isinstance(objectives, list) or not objectives or any(o not in OBJECTIVES for o in objectives):
        raise s.fail("objectives", f"must be a list drawn from {', '.join(OBJECTIVES)}, "
                                   f"not {objectives!r}")
    widths = s.get("widths")
    if not isinstance(widths, list) or len(widths) != len(model.widths):
        raise s.fail("widths", f"must list choices for each of the {len(model.widths)} conv "
                               f"layers, not {widths!r}")
    choices = tuple(_int_list(FieldReader({"widths": w}, f"{where}: search.widths[{i}]"), "widths")
                    for i, w in enumerate(widths))
    search = SearchConfig(s.int("trials", 1), sampler, tuple(objectives),
                          s.int("epochs", 1, default=train.epochs),
                          _optional_images(s, "eval_images"), choices, fidelity,
                          tuple(tuple(p) for p in bits))
    name = r.get("name")
    if not isinstance(name, str) or not name:
        raise r.fail("name", f"must be a non-empty string, not {name!r}")
    accel = r.get("accelerator")
    if not isinstance(accel, str):
        raise r.fail("accelerator", f"must be a config name or path, not {accel!r}")
    return ExperimentConfig(name, dataset, accel, seed, model, train,
                            _optional_images(r, "eval_images"), search)


def load_experiment(path: str | Path) -> ExperimentConfig:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read experiment config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    return parse_experiment(data, str(p))
