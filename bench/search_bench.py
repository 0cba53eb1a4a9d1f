"""Searchers at equal wall time: hypervolume of the hardware-aware sampler (`ehvi`: exact
hardware costs before training, expected hypervolume improvement per second), multi-objective BO
(Optuna's GP sampler and BoTorch's qLogNEHVI), TPE and random search over 3 seeds, on the
Fashion-MNIST experiment's space (configs/experiments/fashion.yaml; validation accuracy from the
integer reference, which is bit-exact with the RTL; cycles from the estimator, exact against it).

For each seed the searchers run side by side, one process each with one torch thread, for the
same wall-time budget (`search.time_budget_s`), so they share the machine's load alike. A trial
counts once it completed inside the budget. All runs' points are normalized together (one
reference point), so hypervolumes compare. Prints per searcher the final hypervolume, its ratio
to random's, the time it needed to reach random's final hypervolume and its share of untrained
candidates; writes bench/results/search.json and search.png.

Usage: python bench/search_bench.py [--budget S] [--seeds N] [--train-images N]
                                    [--samplers ehvi,gp,...]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
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
from optuna._hypervolume import compute_hypervolume  # noqa: E402

SAMPLERS = ("ehvi", "botorch", "gp", "tpe", "random")
EXPERIMENT = ROOT / "configs" / "experiments" / "fashion.yaml"
GRID = 60  # points of each hypervolume-over-time curve


def fashion_subset(n: int, seed: int = 0):
    """n training images of Fashion-MNIST (stratified by the seeded draw); the search carves
    its validation split from them."""
    from codesign.data import Dataset, load_fashion_mnist
    full = load_fashion_mnist()
    keep = np.sort(np.random.default_rng(seed).permutation(len(full.y_train))[:n])
    return Dataset(full.name, full.x_train[keep], full.y_train[keep], full.x_test,
                   full.y_test, full.classes)


def one_run(sampler: str, seed: int, budget: float, train_images: int, queue) -> None:
    """One searcher's run: (seconds after start, objective values, untrained) per distinct
    completed trial, sent back through `queue`."""
    import torch
    torch.set_num_threads(1)
    from codesign.front import distinct_completed
    from codesign.search import run_search
    base = load_experiment(EXPERIMENT)
    search = replace(base.search, sampler=sampler, trials=10_000, fidelity="estimate",
                     eval_images=None, enqueue=(), time_budget_s=budget,
                     train=replace(base.search.train, pretrain_epochs=1, epochs=2,
                                   time_limit_s=budget / 4))
    exp = replace(base, name=f"{sampler}-{seed}", seed=seed, search=search)
    data = fashion_subset(train_images)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        study = run_search(exp, data, Path(tmp), progress=lambda m: None)
        points = [((t.datetime_complete.timestamp() - start), list(t.values),
                   bool(t.user_attrs.get("untrained", False)))
                  for t in distinct_completed(study)]
    queue.put((sampler, seed, points, len(study.trials),
               getattr(study.sampler, "proposal_seconds", None)))


def hypervolume_curves(runs: dict, directions: list[str], budget: float) -> dict:
    """Per run, the hypervolume of the trials completed by each grid time, all runs
    normalized together."""
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    every = np.concatenate([np.array([v for _, v, _ in r]) * sign for r in runs.values() if r])
    lo, hi = every.min(axis=0), every.max(axis=0)
    ref = np.full(len(directions), 1.1)
    grid = np.linspace(0, budget, GRID + 1)[1:]
    curves = {}
    for key, points in runs.items():
        curve = []
        for t in grid:
            done = [v for s, v, _ in points if s <= t]
            if not done:
                curve.append(0.0)
                continue
            norm = (np.array(done) * sign - lo) / np.where(hi > lo, hi - lo, 1.0)
            curve.append(float(compute_hypervolume(norm, ref)))
        curves[key] = curve
    return {"grid_s": grid.tolist(), "curves": curves}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=900, help="seconds per searcher and seed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-images", type=int, default=12_000)
    ap.add_argument("--samplers", default=",".join(SAMPLERS),
                    help="comma-separated, side by side (random is always one of them)")
    args = ap.parse_args()
    samplers = tuple(dict.fromkeys([*args.samplers.split(","), "random"]))
    unknown = set(samplers) - set(SAMPLERS)
    if unknown:
        raise SystemExit(f"--samplers: unknown {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(SAMPLERS)}")
    base = load_experiment(EXPERIMENT)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    runs, attempted, choosing = {}, {}, {}
    for seed in range(args.seeds):
        procs = [ctx.Process(target=one_run, args=(s, seed, args.budget, args.train_images,
                                                   queue)) for s in samplers]
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
    directions = ["maximize" if o == "accuracy" else "minimize" for o in base.search.objectives]
    hv = hypervolume_curves(runs, directions, args.budget)
    curves, grid = hv["curves"], np.array(hv["grid_s"])
    final = {s: [curves[f"{s}/{k}"][-1] for k in range(args.seeds)] for s in samplers}
    random_final = float(np.mean(final["random"]))
    mean_curve = {s: np.mean([curves[f"{s}/{k}"] for k in range(args.seeds)], axis=0)
                  for s in samplers}
    reach = {}  # wall time its mean curve needs to reach random's mean final hypervolume
    for s in samplers:
        hit = np.flatnonzero(mean_curve[s] >= random_final)
        reach[s] = float(grid[hit[0]]) if len(hit) else None
    untrained = {s: float(np.mean([u for k in range(args.seeds)
                                   for _, _, u in runs[f"{s}/{k}"]] or [0.0]))
                 for s in samplers}
    print(f"\nhypervolume after {args.budget:.0f} s each (objectives "
          f"{', '.join(base.search.objectives)}, normalized over all runs, reference 1.1):")
    for s in samplers:
        v = np.array(final[s])
        n = [len(runs[f"{s}/{k}"]) for k in range(args.seeds)]
        r = "never" if reach[s] is None else f"{reach[s]:.0f} s ({reach[s] / args.budget:.2f})"
        print(f"  {s:>8}: mean {v.mean():.4f} std {v.std():.4f}  ratio to random "
              f"{v.mean() / random_final:.3f}  reaches random's final at {r}  candidates "
              f"{'/'.join(map(str, n))}  untrained {untrained[s]:.0%}")
    result = {"budget_s": args.budget, "seeds": args.seeds, "train_images": args.train_images,
              "objectives": list(base.search.objectives), "space": base.search.space.source,
              "final_hypervolume": final,
              "mean": {s: float(np.mean(final[s])) for s in samplers},
              "ratio_to_random": {s: float(np.mean(final[s]) / random_final) for s in samplers},
              "seconds_to_random_final": reach,
              "share_of_budget_to_random_final": {
                  s: None if reach[s] is None else reach[s] / args.budget for s in samplers},
              "candidates": {k: len(v) for k, v in runs.items()}, "trials": attempted,
              "proposal_seconds": choosing,
              "untrained_share": untrained, "grid_s": hv["grid_s"], "curves": curves,
              "points": runs}
    write_results("search", result,
                  lambda r, path: _plot(grid, curves, samplers, args.seeds, path))


def _plot(grid: np.ndarray, curves: dict, samplers: tuple, seeds: int,
          path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in samplers:
        v = np.array([curves[f"{s}/{k}"] for k in range(seeds)])
        ax.plot(grid, v.mean(axis=0), label=s)
        ax.fill_between(grid, v.min(axis=0), v.max(axis=0), alpha=0.2)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("hypervolume (normalized)")
    ax.set_title(f"searchers at equal wall time, {seeds} seeds (band: min-max)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
