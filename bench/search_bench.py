"""Searchers at equal wall time: hypervolume of the hardware-aware sampler (`ehvi`: exact
hardware costs before training, expected hypervolume improvement per second), multi-objective BO
(Optuna's GP sampler and BoTorch's qLogNEHVI), TPE and random search over 3 seeds, on the
Fashion-MNIST experiment's space (configs/experiments/fashion.yaml; validation accuracy from the
integer reference, which is bit-exact with the RTL; cycles from the estimator, exact against it).

For each seed the searchers run side by side, one process each with one torch thread and its own
evaluation cache, for the same wall-time budget (`search.time_budget_s`), so they share the
machine's load alike and none is answered from another's evaluations. A trial
counts once it completed inside the budget. All runs' points are scaled together (one
reference point), so hypervolumes compare: by the range of every measured point (the headline,
`ratio_to_random`) and by the ideal and nadir of all runs' joint Pareto front
(`front_normalized`); under each, all runs' points together bound what any searcher could reach
with the candidates found (`union_ratio_to_random`). Prints per searcher the final hypervolume,
its ratio to random's, the time it needed to reach random's final hypervolume, its share of
untrained candidates; writes bench/results/search.json and search.png. `--from-json FILE`
analyzes a stored run again.

`--space NAME` searches another space of configs/search/ (results: search-NAME.json).

Usage: python bench/search_bench.py [--budget S] [--seeds N] [--train-images N]
                                    [--samplers ehvi,gp,...] [--space NAME] [--from-json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import write_results  # noqa: E402
from codesign.experiment import load_experiment  # noqa: E402
from codesign.space import load_space  # noqa: E402
from optuna._hypervolume import compute_hypervolume  # noqa: E402

SAMPLERS = ("ehvi", "botorch", "gp", "tpe", "random")
EXPERIMENT = ROOT / "configs" / "experiments" / "fashion.yaml"
GRID = 60  # points of each hypervolume-over-time curve
REF = 1.1  # the reference point in every scaled objective


def fashion_subset(n: int, seed: int = 0):
    """n training images of Fashion-MNIST (stratified by the seeded draw); the search carves
    its validation split from them."""
    from codesign.data import Dataset, load_fashion_mnist
    full = load_fashion_mnist()
    keep = np.sort(np.random.default_rng(seed).permutation(len(full.y_train))[:n])
    return Dataset(full.name, full.x_train[keep], full.y_train[keep], full.x_test,
                   full.y_test, full.classes)


def experiment(space: str | None):
    """The Fashion-MNIST experiment, with another search space if named."""
    base = load_experiment(EXPERIMENT)
    return replace(base, search=replace(base.search, space=load_space(space))) if space \
        else base


def one_run(sampler: str, seed: int, budget: float, train_images: int, space: str | None,
            queue) -> None:
    """One searcher's run: (seconds after start, objective values, untrained) per distinct
    completed trial, sent back through `queue`."""
    import torch
    torch.set_num_threads(1)
    from codesign.front import distinct_completed
    from codesign.search import run_search
    base = experiment(space)
    search = replace(base.search, sampler=sampler, trials=10_000, fidelity="estimate",
                     eval_images=None, enqueue=(), time_budget_s=budget,
                     train=replace(base.search.train, pretrain_epochs=1, epochs=2,
                                   time_limit_s=budget / 4))
    exp = replace(base, name=f"{sampler}-{seed}", seed=seed, search=search)
    data = fashion_subset(train_images)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        # its own evaluation cache: no run is answered from another's (or an earlier run's)
        os.environ["CODESIGN_CACHE"] = str(Path(tmp) / "cache")
        study = run_search(exp, data, Path(tmp), progress=lambda m: None)
        points = [((t.datetime_complete.timestamp() - start), list(t.values),
                   bool(t.user_attrs.get("untrained", False)))
                  for t in distinct_completed(study)]
    queue.put((sampler, seed, points, len(study.trials),
               getattr(study.sampler, "proposal_seconds", None)))


def spans(runs: dict, sign: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per normalization, the (lo, hi) each objective is scaled by: `all` every measured point
    of every run (the headline, as before), `front` the ideal and nadir of the Pareto front of
    all runs together (the usual choice in multi-objective benchmarks: volume behind the
    front's worst points counts for nobody)."""
    every = np.concatenate([np.array([v for _, v, _ in r]) * sign for r in runs.values() if r])
    front = every[[not np.any(np.all(every <= p, axis=1) & np.any(every < p, axis=1))
                   for p in every]]
    return {"all": (every.min(axis=0), every.max(axis=0)),
            "front": (front.min(axis=0), front.max(axis=0))}


def hypervolume(values, sign: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Of the objective vectors `values`, scaled to [lo, hi] -> [0, 1], reference 1.1 (points
    past it add nothing)."""
    norm = (np.array(values) * sign - lo) / np.where(hi > lo, hi - lo, 1.0)
    norm = norm[np.all(norm < REF, axis=1)]
    return float(compute_hypervolume(norm, np.full(norm.shape[1], REF))) if len(norm) else 0.0


def analyze(runs: dict, samplers: tuple, seeds: int, budget: float, directions: list[str],
            span: str) -> dict:
    """Hypervolume over wall time per run under one normalization; finals, ratios to random,
    the time to reach random's final; `union`: all runs' points together (no searcher can
    pass it with the candidates found)."""
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    lo, hi = spans(runs, sign)[span]
    grid = np.linspace(0, budget, GRID + 1)[1:]
    curves = {key: [hypervolume([v for s, v, _ in points if s <= t] or np.empty((0, len(sign))),
                                sign, lo, hi) for t in grid]
              for key, points in runs.items()}
    final = {s: [curves[f"{s}/{k}"][-1] for k in range(seeds)] for s in samplers}
    random_final = float(np.mean(final["random"]))
    reach = {}  # wall time its mean curve needs to reach random's mean final hypervolume
    for s in samplers:
        hit = np.flatnonzero(np.mean([curves[f"{s}/{k}"] for k in range(seeds)], axis=0)
                             >= random_final)
        reach[s] = float(grid[hit[0]]) if len(hit) else None
    union = hypervolume([v for r in runs.values() for _, v, _ in r], sign, lo, hi)
    return {"normalized_by": span, "grid_s": grid.tolist(), "curves": curves,
            "final_hypervolume": final,
            "mean": {s: float(np.mean(final[s])) for s in samplers},
            "ratio_to_random": {s: float(np.mean(final[s]) / random_final) for s in samplers},
            "seconds_to_random_final": reach,
            "share_of_budget_to_random_final": {
                s: None if reach[s] is None else reach[s] / budget for s in samplers},
            "union_ratio_to_random": union / random_final}


def run_all(args, samplers: tuple) -> tuple[dict, dict, dict]:
    """Every searcher of every seed, side by side per seed: (points, trials, proposal
    seconds) per run."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    runs, attempted, choosing = {}, {}, {}
    for seed in range(args.seeds):
        procs = [ctx.Process(target=one_run, args=(s, seed, args.budget, args.train_images,
                                                   args.space, queue)) for s in samplers]
        for p in procs:
            p.start()
        for _ in procs:
            sampler, s, points, n, seconds = queue.get()
            runs[f"{sampler}/{s}"], attempted[f"{sampler}/{s}"] = points, n
            choosing[f"{sampler}/{s}"] = seconds
            print(f"{sampler:>8} seed {s}: {len(points)} candidates measured of {n} trials "
                  f"in {args.budget:.0f} s", flush=True)
        for p in procs:
            p.join()
            if p.exitcode:
                raise SystemExit(f"a searcher's process failed (exit {p.exitcode})")
    return runs, attempted, choosing


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=900, help="seconds per searcher and seed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-images", type=int, default=12_000)
    ap.add_argument("--samplers", default=",".join(SAMPLERS),
                    help="comma-separated, side by side (random is always one of them)")
    ap.add_argument("--space", help="another search space of configs/search/ (default: the "
                    "experiment's, configs/search/fashion.yaml)")
    ap.add_argument("--from-json", type=Path, help="analyze the runs stored in this results "
                    "file again instead of running (its budget, seeds and samplers)")
    args = ap.parse_args()
    base = experiment(args.space)
    stored = json.loads(args.from_json.read_text()) if args.from_json else {}
    if args.from_json:
        runs = {k: [(s, v, u) for s, v, u in p] for k, p in stored["points"].items()}
        attempted, choosing = stored["trials"], stored.get("proposal_seconds", {})
        args.budget, args.seeds = stored["budget_s"], stored["seeds"]
        args.train_images = stored["train_images"]
        samplers = tuple(dict.fromkeys(k.split("/")[0] for k in runs))
    else:
        samplers = tuple(dict.fromkeys([*args.samplers.split(","), "random"]))
        unknown = set(samplers) - set(SAMPLERS)
        if unknown:
            raise SystemExit(f"--samplers: unknown {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(SAMPLERS)}")
        runs, attempted, choosing = run_all(args, samplers)
    directions = ["maximize" if o == "accuracy" else "minimize" for o in base.search.objectives]
    headline, by_front = (analyze(runs, samplers, args.seeds, args.budget, directions, span)
                          for span in ("all", "front"))
    untrained = {s: float(np.mean([u for k in range(args.seeds)
                                   for _, _, u in runs[f"{s}/{k}"]] or [0.0]))
                 for s in samplers}
    for h, what in ((headline, "every measured point of all runs"),
                    (by_front, "the ideal and nadir of all runs' joint Pareto front")):
        print(f"\nhypervolume after {args.budget:.0f} s each (objectives "
              f"{', '.join(base.search.objectives)}; scaled by {what}; reference 1.1); all "
              f"runs' points together: {h['union_ratio_to_random']:.3f} x random's:")
        for s in samplers:
            v, reach = np.array(h["final_hypervolume"][s]), h["seconds_to_random_final"][s]
            n = [len(runs[f"{s}/{k}"]) for k in range(args.seeds)]
            r = "never" if reach is None else f"{reach:.0f} s ({reach / args.budget:.2f})"
            print(f"  {s:>8}: mean {v.mean():.4f} std {v.std():.4f}  ratio to random "
                  f"{h['ratio_to_random'][s]:.3f}  reaches random's final at {r}  candidates "
                  f"{'/'.join(map(str, n))}  untrained {untrained[s]:.0%}")
    result = {"budget_s": args.budget, "seeds": args.seeds, "train_images": args.train_images,
              "objectives": list(base.search.objectives),
              "space": stored["space"] if args.from_json else _relative(base.search.space.source),
              **{k: v for k, v in headline.items() if k != "normalized_by"},
              "front_normalized": {k: v for k, v in by_front.items() if k != "grid_s"},
              "candidates": {k: len(v) for k, v in runs.items()}, "trials": attempted,
              "proposal_seconds": choosing, "untrained_share": untrained, "points": runs}
    grid = np.array(headline["grid_s"])
    space = Path(result["space"]).stem  # the default space's results keep their old name
    write_results("search" if space == "fashion" else f"search-{space}", result,
                  lambda r, path: _plot(grid, headline["curves"], by_front["curves"], samplers,
                                        args.seeds, path))


def _relative(path: str) -> str:
    """A path inside the project as the project names it (results do not depend on where
    the checkout lives)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def _plot(grid: np.ndarray, curves: dict, front_curves: dict, samplers: tuple, seeds: int,
          path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, c, what in ((axes[0], curves, "scaled by all points"),
                        (axes[1], front_curves, "scaled by the joint front")):
        for s in samplers:
            v = np.array([c[f"{s}/{k}"] for k in range(seeds)])
            ax.plot(grid, v.mean(axis=0), label=s)
            ax.fill_between(grid, v.min(axis=0), v.max(axis=0), alpha=0.2)
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("hypervolume")
        ax.set_title(f"{what}, {seeds} seeds (band: min-max)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
