"""Searchers at equal trial budgets: hypervolume of multi-objective BO (Optuna's GP sampler and
BoTorch's qLogNEHVI), NSGA-II and random search over 3 seeds, on the digits experiment's space
(accuracy from the integer reference, which is bit-exact with the RTL; cycles from the
estimator, exact against it).

All runs' points are normalized together (one reference point), so hypervolumes compare.
Prints mean and spread per searcher and the ratios to random; writes bench/results/search.json
and search_hypervolume.png.  Usage: python bench/search_bench.py [--trials N] [--seeds S]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codesign.data import load_digits  # noqa: E402
from codesign.experiment import load_experiment  # noqa: E402
from codesign.report import completed  # noqa: E402
from codesign.search import run_search  # noqa: E402
from optuna._hypervolume import compute_hypervolume  # noqa: E402

SAMPLERS = ("botorch", "gp", "nsga2", "random")
OUT = ROOT / "bench" / "results"


def hypervolumes(runs: dict, directions: list[str]) -> dict:
    """Per run, the hypervolume after each trial, all runs normalized together."""
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    every = np.concatenate([np.array(v) * sign for v in runs.values()])
    lo, hi = every.min(axis=0), every.max(axis=0)
    ref = np.full(len(directions), 1.1)
    curves = {}
    for key, values in runs.items():
        norm = (np.array(values) * sign - lo) / np.where(hi > lo, hi - lo, 1.0)
        curves[key] = [float(compute_hypervolume(norm[:i + 1], ref)) for i in range(len(norm))]
    return curves


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=28)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    base = load_experiment(ROOT / "configs" / "experiments" / "digits.yaml")
    data = load_digits()
    runs, seconds = {}, {}
    for seed in range(args.seeds):
        for sampler in SAMPLERS:
            search = replace(base.search, sampler=sampler, trials=args.trials, fidelity="estimate",
                             eval_images=None, enqueue=(),
                             train=replace(base.search.train, pretrain_epochs=3, epochs=2))
            exp = replace(base, name=f"{sampler}-{seed}", seed=seed, search=search)
            start = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                study = run_search(exp, data, Path(tmp), progress=lambda m: None)
                runs[f"{sampler}/{seed}"] = [t.values for t in completed(study)]
            seconds[f"{sampler}/{seed}"] = time.time() - start
            print(f"{sampler:>6} seed {seed}: {len(runs[f'{sampler}/{seed}'])} trials in "
                  f"{seconds[f'{sampler}/{seed}']:.0f} s", flush=True)
    directions = ["maximize" if o == "accuracy" else "minimize" for o in base.search.objectives]
    curves = hypervolumes(runs, directions)
    final = {s: [curves[f"{s}/{k}"][-1] for k in range(args.seeds)] for s in SAMPLERS}
    print(f"\nhypervolume after {args.trials} trials (objectives "
          f"{', '.join(base.search.objectives)}, normalized over all runs, reference 1.1):")
    for s in SAMPLERS:
        v = np.array(final[s])
        print(f"  {s:>6}: mean {v.mean():.4f}  std {v.std():.4f}  per seed "
              f"{' '.join(f'{x:.4f}' for x in v)}  ratio to random "
              f"{v.mean() / np.mean(final['random']):.3f}")
    result = {"trials": args.trials, "seeds": args.seeds, "objectives": base.search.objectives,
              "space": base.search.space.source, "final_hypervolume": final,
              "mean": {s: float(np.mean(final[s])) for s in SAMPLERS},
              "ratio_to_random": {s: float(np.mean(final[s]) / np.mean(final["random"]))
                                  for s in SAMPLERS},
              "curves": curves, "seconds": seconds}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "search.json").write_text(json.dumps(result, indent=2))
    _plot(curves, args.seeds, OUT / "search_hypervolume.png")
    print(f"figures: {OUT / 'search.json'}, {OUT / 'search_hypervolume.png'}")


def _plot(curves: dict, seeds: int, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in SAMPLERS:
        runs = [curves[f"{s}/{k}"] for k in range(seeds)]
        n = min(len(r) for r in runs)
        v = np.array([r[:n] for r in runs])
        x = np.arange(1, n + 1)
        ax.plot(x, v.mean(axis=0), label=s)
        ax.fill_between(x, v.min(axis=0), v.max(axis=0), alpha=0.2)
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume (normalized)")
    ax.set_title(f"searchers at equal budgets, {seeds} seeds (band: min-max)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
