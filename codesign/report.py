"""A search run's results from its study: trials (CSV, JSON), the Pareto front, plots (Pareto
scatter per objective pair, hypervolume over trials), report.md and the interactive report.html.
`codesign report RUN_DIR` regenerates them from the stored study alone.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume

from codesign.front import distinct_completed, feasible, held_out_score, pareto_trials
from codesign.html_report import search_page
from codesign.objectives import OBJECTIVES


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials the results count: distinct completed candidates meeting the constraints."""
    return [t for t in distinct_completed(study) if feasible(t)]


def _losses(trials, directions) -> np.ndarray:
    """Objective values as losses (maximized objectives negated)."""
    sign = np.array([-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0
                     for d in directions])
    return np.array([t.values for t in trials], dtype=np.float64) * sign


def hypervolume_curve(study: optuna.Study) -> list[float]:
    """Hypervolume of the front after each completed trial, with objectives normalized to the
    observed range and the reference point at the worst value plus 10 %."""
    trials = completed(study)
    if not trials:
        return []
    loss = _losses(trials, study.directions)
    lo, hi = loss.min(axis=0), loss.max(axis=0)
    norm = (loss - lo) / np.where(hi > lo, hi - lo, 1.0)
    ref = np.full(loss.shape[1], 1.1)
    return [float(compute_hypervolume(norm[:i + 1], ref)) for i in range(len(trials))]


def write_report(study: optuna.Study, run_dir: Path, objectives: tuple[str, ...]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    trials = completed(study)
    pareto = {t.number for t in pareto_trials(study)}
    rows = []
    for t in study.trials:
        m = t.user_attrs.get("metrics") or {}
        rows.append({"number": t.number, "state": t.state.name,
                     "candidate": t.user_attrs.get("description", ""), **t.params,
                     **{k: m.get(k) for k in ("accuracy", "cycles", "latency_s", "energy_j",
                                              "size_bits", "fidelity")},
                     "pareto": t.number in pareto})
    (run_dir / "trials.json").write_text(json.dumps(
        [{"number": t.number, "state": t.state.name, "params": t.params, "values": t.values,
          "candidate": t.user_attrs.get("candidate"),
          "accelerator": t.user_attrs.get("accelerator"),
          "infeasible": t.user_attrs.get("infeasible"), "error": t.user_attrs.get("error"),
          "test": held_out_score(study, t),
          "duplicate_of": t.user_attrs.get("duplicate_of"),
          "stopped_early": t.user_attrs.get("stopped_early"),
          "metrics": t.user_attrs.get("metrics")} for t in study.trials], indent=2))
    with open(run_dir / "trials.csv", "w", newline="") as f:
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in rows[0], k)) \
            if rows else []
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    front = [r for r in rows if r["pareto"]]
    (run_dir / "pareto.json").write_text(json.dumps(front, indent=2))
    images = _plots(study, trials, pareto, run_dir, objectives)
    state = optuna.trial.TrialState
    others = [(sum(t.state == state.PRUNED for t in study.trials),
               "pruned (they do not fit the accelerator or miss a constraint)"),
              (sum(t.state == state.FAIL for t in study.trials),
               "failed (reasons in trials.json)"),
              (sum("duplicate_of" in t.user_attrs for t in study.trials
                   if t.state == state.COMPLETE), "repeated a finished candidate"),
              (sum("stopped_early" in t.user_attrs for t in study.trials
                   if t.state == state.COMPLETE),
               "stopped training early: dominated even at their best reachable accuracy"),
              (sum("warm_start" in t.user_attrs for t in study.trials),
               "copied from an earlier run as priors (warm start)")]
    others = "".join(f"; {n} {what}" for n, what in others if n)
    trained = [t for t in study.trials if "untrained" in t.user_attrs]
    if trained:
        n = sum(t.user_attrs["untrained"] for t in trained)
        others += (f"; {n} of {len(trained)} trained candidates ({100 * n / len(trained):.0f}%) "
                   f"stayed within 2x chance accuracy (untrained at their budget)")
    # The hardware figures that are not objectives, next to them (energy in nJ).
    shown = [*objectives, *(o for o in ("cycles", "energy") if o not in objectives)]
    lines = [f"# Search {study.study_name}", "",
             f"{len(trials)} distinct completed trials meeting the constraints, of "
             f"{len(study.trials)}{others}; "
             f"objectives: {', '.join(objectives)}; Pareto front: {len(front)} trials.", "",
             *([f"**This run is empty**: no trial completed (of {len(study.trials)} started; "
                f"their states and reasons are in trials.json). `codesign search --resume` "
                f"continues it.", ""] if not trials else []),
             "## Pareto front", "",
             "| trial | " + " | ".join(OBJECTIVES[o].label for o in shown)
             + " | test accuracy | fidelity | accelerator |",
             "|---|" + "---|" * len(shown) + "---|---|---|"]
    best = [t for t in trials if t.number in pareto]
    for t in best:
        m = t.user_attrs.get("metrics", {})
        lines.append(f"| {t.number} | "
                     + " | ".join(OBJECTIVES[o].show(m.get(OBJECTIVES[o].field)) for o in shown)
                     + f" | {_test(study, t)} | {m.get('fidelity', '')} | "
                       f"{t.user_attrs.get('accelerator', '')} |")
    lines += ["", "Objectives were measured on a validation split of the training images; "
              "test accuracy on the held-out test split, measured only for the front.",
              "", "## Per-layer bit widths of the Pareto models", "",
              "Blocks in order, then the classifier; bits are weights / input activations.", ""]
    for t in best:
        c = t.user_attrs.get("candidate")
        if not c:
            continue
        lines += [f"**Trial {t.number}**", "",
                  "| layer | kind | kernel / stride | width | residual | bits (w/a) |",
                  "|---|---|---|---|---|---|"]
        for i, b in enumerate(c["blocks"]):
            kind = "depthwise-separable" if b["depthwise"] else "conv"
            lines.append(f"| block {i} | {kind} | {b['kernel']} / {b['stride']} | {b['width']} | "
                         f"{'yes' if b['residual'] else ''} | {b['bits'][0]}/{b['bits'][1]} |")
        w, a = c["classifier_bits"]
        lines += [f"| classifier | dense ({c['head']}) | | | | {w}/{a} |", ""]
    config = run_dir / "config.yaml"
    search_page(study, trials, pareto, objectives, hypervolume_curve(study),
                config.read_text() if config.exists() else "(no config.yaml in the run directory)",
                run_dir / "report.html", summary=lines[2])
    lines += ["## Plots", "", "Interactive: [report.html](report.html) (hover a point for its "
              "candidate, click it for its layers).", "",
              *(f"![{name}]({name})" for name in images), ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _test(study: optuna.Study, t: optuna.trial.FrozenTrial) -> str:
    r = held_out_score(study, t)
    return "" if r is None else f"{r['accuracy']:.4g} ({r['images']} images)"


def _plots(study, trials, pareto, run_dir: Path, objectives) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    if not trials:
        return names
    values = np.array([t.values for t in trials])
    is_front = np.array([t.number in pareto for t in trials])
    for i, j in itertools.combinations(range(len(objectives)), 2):
        fig, ax = plt.subplots(figsize=(5, 4))
        sx, sy = OBJECTIVES[objectives[i]].scale, OBJECTIVES[objectives[j]].scale
        ax.scatter(sx * values[~is_front, i], sy * values[~is_front, j], c="tab:gray",
                   label="trials")
        ax.scatter(sx * values[is_front, i], sy * values[is_front, j], c="tab:red",
                   label="Pareto front")
        ax.set_xlabel(OBJECTIVES[objectives[i]].label)
        ax.set_ylabel(OBJECTIVES[objectives[j]].label)
        ax.legend()
        fig.tight_layout()
        name = f"pareto_{objectives[i]}_{objectives[j]}.png"
        fig.savefig(run_dir / name, dpi=100)
        plt.close(fig)
        names.append(name)
    if len(objectives) > 1:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(range(1, len(trials) + 1), hypervolume_curve(study), marker="o")
        ax.set_xlabel("completed trials")
        ax.set_ylabel("hypervolume (normalized)")
        fig.tight_layout()
        fig.savefig(run_dir / "hypervolume.png", dpi=100)
        plt.close(fig)
        names.append("hypervolume.png")
    return names
