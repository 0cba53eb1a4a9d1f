"""A sampler that uses what only this search knows (`sampler: ehvi`): a candidate's hardware
objectives are exact before training (the estimator on its untrained program), so only its
accuracy (and resilience) and its training time need a model.

After a few random trials, each proposal is the fresh candidate with the largest expected
hypervolume improvement per predicted second of training, among a pool of random draws and one-
or two-choice mutations of the Pareto front's candidates. Gaussian processes over the space's
ordinal encoding (`SearchSpace.encode`: widths, kernels and bits as numbers) predict what is
unknown; for the pool the hardware objectives are predicted the same way (all but the size, which
is counted), then computed exactly for the most promising few, which are scored again.

The search binds the sampler to its space and hardware (`bind`); unbound, or before enough
trials, it draws at random."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume
from optuna.distributions import BaseDistribution, CategoricalDistribution
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

from codesign.front import pareto_trials
from codesign.objectives import HARDWARE, OBJECTIVES

HARDWARE_FIELDS = {OBJECTIVES[o].field for o in HARDWARE}
STARTUP = 4  # random trials before the models take over
POOL = 96  # candidates scored per proposal (half random, half mutations of the front)
EXACT = 1  # of them, the most promising whose hardware is computed exactly (a compilation,
#            1-2 s, reused by the search's own check); more cost a fifth of the wall time
SAMPLES = 16  # draws of the predicted objectives per candidate (shared by all candidates)


@dataclass(frozen=True)
class Binding:
    """What the search tells the sampler. `describe(params)` gives a candidate's key (as the
    search's trials store it), its encoding and its counted size in bits; `hardware(params)`
    its exact hardware objectives by field, None if it cannot fit or misses a constraint."""
    objectives: tuple[str, ...]
    distributions: dict[str, BaseDistribution]
    describe: Callable[[dict], tuple[str, list[float], float]]
    hardware: Callable[[dict], dict | None]


class HardwareAwareSampler(optuna.samplers.BaseSampler):
    def __init__(self, seed: int | None = None, startup: int = STARTUP):
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._startup = startup
        self._binding: Binding | None = None
        self._exact: dict[str, tuple[list[float], dict]] = {}  # key -> (encoding, hardware)
        self._described: dict[tuple, tuple[str, list[float], float]] = {}  # params -> describe
        self.proposal_seconds = 0.0  # spent choosing (models, pool, exact hardware)

    def bind(self, binding: Binding) -> None:
        self._binding = binding

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return dict(self._binding.distributions) if self._binding else {}

    def sample_independent(self, study, trial, name, distribution):
        return self._random.sample_independent(study, trial, name, distribution)

    def sample_relative(self, study, trial, search_space) -> dict:
        b = self._binding
        if not search_space or b is None:
            return {}
        measured = [t for t in study.get_trials(deepcopy=False,
                                                states=(optuna.trial.TrialState.COMPLETE,))
                    if "metrics" in t.user_attrs and "duplicate_of" not in t.user_attrs
                    and set(t.params) == set(search_space)]
        if len(measured) < self._startup:
            return {}
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            params = self._propose(study, measured, search_space, b)
        self.proposal_seconds += time.perf_counter() - start
        return params

    def _propose(self, study, measured, space, b: Binding) -> dict:
        known = {t.user_attrs.get("key") for t in study.get_trials(deepcopy=False)}
        pool = self._pool(study, space, known)
        if not pool:
            return {}
        fields = [OBJECTIVES[o].field for o in b.objectives]
        sign = np.array([-1.0 if OBJECTIVES[o].maximize else 1.0 for o in b.objectives])
        # what was measured: objectives (hardware ones also from exact-only candidates), seconds
        # the encoding and the counted size (capacity: what accuracy and training time follow)
        x_seen = np.array([self._describe(t.params)[1]
                           + [math.log2(t.user_attrs["metrics"]["size_bits"])] for t in measured])
        y_seen = np.array([[t.user_attrs["metrics"][f] for f in fields] for t in measured])
        seconds = [(t.datetime_complete - t.datetime_start).total_seconds()
                   if t.datetime_start and t.datetime_complete else np.nan for t in measured]
        x_pool = np.array([enc + [math.log2(size)] for _, _, enc, size in pool])
        mean, std = np.zeros((len(pool), len(fields))), np.zeros((len(pool), len(fields)))
        for j, f in enumerate(fields):
            if f == "size_bits":
                mean[:, j] = [size for _, _, _, size in pool]
                continue
            x, y = x_seen, y_seen[:, j]
            if f in HARDWARE_FIELDS:  # exact-only candidates add to what is known
                extra = [(enc + [math.log2(hw["size_bits"])], hw[f])
                         for enc, hw in self._exact.values() if hw and f in hw]
                if extra:
                    x = np.vstack([x, [e for e, _ in extra]])
                    y = np.concatenate([y, [v for _, v in extra]])
            mean[:, j], std[:, j] = _predict(x, y, x_pool, log=f in HARDWARE_FIELDS,
                                             seed=self._seed)
        ok = np.isfinite(seconds) & (np.array(seconds) > 0)  # (priors have no durations)
        cost = (np.exp(_predict(x_seen[ok], np.log(np.array(seconds)[ok]), x_pool,
                                seed=self._seed)[0]) if ok.sum() >= 2 else np.ones(len(pool)))
        front = np.array([[v * s for v, s in zip(t.values, sign)]
                          for t in pareto_trials(study)]).reshape(-1, len(fields))
        losses = y_seen * sign
        lo, hi = losses.min(axis=0), losses.max(axis=0)
        scale = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
        ref = (hi - lo) / scale + 0.1
        front = (front - lo) / scale
        draws = np.random.default_rng(len(measured)).standard_normal((SAMPLES, len(fields)))

        def score(m, s, c) -> float:
            points = ((m + s * draws) * sign - lo) / scale
            return float(np.mean([_improvement(front, p, ref) for p in points])) / c

        first = [score(mean[i], std[i], cost[i]) for i in range(len(pool))]
        best, best_score, scored = None, -1.0, 0
        for i in np.argsort(first)[::-1][:4 * EXACT]:
            key, params, enc, _ = pool[i]
            if key not in self._exact:
                self._exact[key] = (enc, b.hardware(params))
            hw = self._exact[key][1]
            if hw is None:  # cannot fit or misses a constraint: no training for it
                continue
            scored += 1
            m, s = mean[i].copy(), std[i].copy()
            for j, f in enumerate(fields):
                if f in hw:
                    m[j], s[j] = hw[f], 0.0
            value = score(m, s, cost[i])
            if value > best_score:
                best, best_score = params, value
            if scored == EXACT:
                break
        return best or {}

    def _describe(self, params: dict) -> tuple[str, list[float], float]:
        at = tuple(sorted(params.items()))
        if at not in self._described:
            self._described[at] = self._binding.describe(params)
        return self._described[at]

    def _pool(self, study, space: dict, known: set) -> list:
        """(key, params, encoding, size) of fresh candidates: random draws and mutations of the
        front's candidates."""
        names = [n for n, d in space.items() if isinstance(d, CategoricalDistribution)]
        if len(names) != len(space):
            return []
        parents = [t.params for t in pareto_trials(study) if set(t.params) == set(space)]
        pool, seen = [], set(known)
        for n in range(4 * POOL):
            if len(pool) >= POOL:
                break
            if parents and n % 2:
                params = dict(parents[self._rng.integers(len(parents))])
                for name in self._rng.choice(names, size=min(len(names),
                                             1 + self._rng.integers(2)), replace=False):
                    params[name] = _draw(self._rng, space[name])
            else:
                params = {name: _draw(self._rng, space[name]) for name in names}
            key, enc, size = self._describe(params)
            if key in seen:
                continue
            seen.add(key)
            pool.append((key, params, enc, size))
        return pool


def _draw(rng: np.random.Generator, dist: CategoricalDistribution):
    return dist.choices[rng.integers(len(dist.choices))]


def _predict(x: np.ndarray, y: np.ndarray, x_new: np.ndarray, log: bool = False,
             seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of y at x_new by a Gaussian process on standardized
    inputs (in log space for `log`: hardware costs are products)."""
    y = np.log(np.maximum(y, 1e-30)) if log else np.asarray(y, float)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * RBF(math.sqrt(x.shape[1]), (0.1, 1e3))
              + WhiteKernel(0.05, (1e-6, 1.0)))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=1,
                                  random_state=seed if seed is None else seed % 2**32)
    gp.fit((x - mu) / sd, y)
    m, s = gp.predict((x_new - mu) / sd, return_std=True)
    if log:  # the mean of a log-normal's median is enough for ranking; spread in log space
        return np.exp(m), np.exp(m) * s
    return m, s


def _improvement(front: np.ndarray, point: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume the point adds to the front's (losses, below `ref`): its box minus the
    part the front already dominates (the boxes of max(front, point))."""
    if np.any(point >= ref):
        return 0.0
    box = float(np.prod(ref - point))
    if len(front) == 0:
        return box
    inside = np.maximum(front, point)
    inside = inside[np.all(inside < ref, axis=1)]
    return box - (compute_hypervolume(inside, ref) if len(inside) else 0.0)

