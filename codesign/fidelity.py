"""Fidelity of the analytic estimator: estimated vs RTL cycles and energy, per layer and end to
end, over the network zoo, the official MLPerf Tiny TFLite models and random candidates on every
shipped accelerator config.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from compiler.errors import CompileError
from compiler.estimate import estimate
from compiler.pipeline import compile_model
from compiler.tflite import compile_tflite
from compiler.zoo import TFLITE_ZOO, ZOO, TfliteEntry, build, random_entry
from hw.config import CONFIG_DIR, load_accel_config
from hw.energy import energy_of
from hw.errors import CodesignError


def _error(est: float, rtl: float) -> float:
    return abs(est - rtl) / rtl if rtl else float(est != rtl)


def _compiled(entry, config):
    """(compiled network, one input) of a zoo entry or an official TFLite model."""
    if isinstance(entry, TfliteEntry):
        net = compile_tflite(entry.path, config)
        return net, net.random_inputs(1)
    rng = np.random.default_rng(0)
    cal = rng.standard_normal((4, *entry.input_shape)).astype(np.float32)
    return compile_model(build(entry), torch.from_numpy(cal[:1]), config, entry.quant,
                         cal), cal[:1]


def measure(entry, config) -> dict:
    """One network on one config: estimated and RTL counters of every layer."""
    net, x = _compiled(entry, config)
    start = time.perf_counter()
    est = estimate(net.program)  # the program's events were decoded at compile time
    est_s = time.perf_counter() - start
    with net.runner("rtl") as runner:
        runner(x)
        rtl = {r.name: r.counters for r in runner.layer_runs}
    table, w = config.energy, config.vector_width
    layers = []
    for name, counters in rtl.items():
        e_rtl = energy_of(counters, table, w).total_j
        e_est = energy_of(est[name], table, w).total_j
        layers.append({"name": name, "rtl_cycles": counters["cycles"],
                       "estimate_cycles": est[name]["cycles"], "rtl_energy_j": e_rtl,
                       "estimate_energy_j": e_est,
                       "counters_equal": counters == est[name]})
    tot = {k: sum(layer[k] for layer in layers)
           for k in ("rtl_cycles", "estimate_cycles", "rtl_energy_j", "estimate_energy_j")}
    return {"network": entry.name, "accelerator": config.name, "layers": layers, **tot,
            "estimate_s": est_s,
            "cycle_error": _error(tot["estimate_cycles"], tot["rtl_cycles"]),
            "energy_error": _error(tot["estimate_energy_j"], tot["rtl_energy_j"]),
            "max_layer_cycle_error": max(_error(x["estimate_cycles"], x["rtl_cycles"])
                                         for x in layers),
            "max_layer_energy_error": max(_error(x["estimate_energy_j"], x["rtl_energy_j"])
                                          for x in layers)}


def report(random: int = 30, configs: list[str] | None = None, out: Path | None = None,
           progress: Callable[[str], None] = print) -> dict:
    names = configs or sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    entries = [*ZOO, *TFLITE_ZOO, *(random_entry(s) for s in range(random))]
    rows, skipped = [], []
    for name in names:
        config = load_accel_config(name)
        for entry in entries:
            try:
                row = measure(entry, config)
            except CompileError as exc:
                skipped.append({"network": entry.name, "accelerator": name,
                                "reason": str(exc).splitlines()[0]})
                continue
            rows.append(row)
            progress(f"{name:8} {entry.name:14} cycles {row['rtl_cycles']:>8} RTL, "
                     f"{row['estimate_cycles']:>8} estimated "
                     f"(error {100 * row['cycle_error']:.2f}%, "
                     f"worst layer {100 * row['max_layer_cycle_error']:.2f}%), energy error "
                     f"{100 * row['energy_error']:.2f}%, estimate {1e3 * row['estimate_s']:.1f} ms")
    if not rows:
        reasons = "; ".join(f"{s['network']} on {s['accelerator']}: {s['reason']}"
                            for s in skipped[:3])
        raise CodesignError(f"no network of the zoo or the {random} random candidates compiles "
                            f"for {', '.join(names)}, so there is nothing to compare "
                            f"({reasons}{'; ...' if len(skipped) > 3 else ''})")
    summary = {
        "networks": len(rows), "skipped": len(skipped),
        "max_cycle_error": max(r["cycle_error"] for r in rows),
        "max_layer_cycle_error": max(r["max_layer_cycle_error"] for r in rows),
        "max_energy_error": max(r["energy_error"] for r in rows),
        "max_layer_energy_error": max(r["max_layer_energy_error"] for r in rows),
        "layers_with_identical_counters": sum(x["counters_equal"] for r in rows
                                              for x in r["layers"]),
        "layers": sum(len(r["layers"]) for r in rows),
        "max_estimate_s": max(r["estimate_s"] for r in rows),
    }
    result = {"summary": summary, "rows": rows, "skipped": skipped}
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "fidelity.json").write_text(json.dumps(result, indent=2))
        scatter(rows, out / "fidelity.png")
    return result


def scatter(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (what, unit) in zip(axes, (("cycles", "cycles"), ("energy_j", "J"))):
        for name in sorted({r["accelerator"] for r in rows}):
            pts = [(x[f"rtl_{what}"], x[f"estimate_{what}"]) for r in rows
                   if r["accelerator"] == name for x in r["layers"]]
            ax.scatter(*zip(*pts), s=8, label=name)
        lo = min(x[f"rtl_{what}"] for r in rows for x in r["layers"])
        hi = max(x[f"rtl_{what}"] for r in rows for x in r["layers"])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"RTL ({unit})")
        ax.set_ylabel(f"estimated ({unit})")
        ax.set_title(f"per layer: {what}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_table(result: dict) -> str:
    s = result["summary"]
    return "\n".join([
        f"{s['networks']} network/accelerator pairs ({s['skipped']} did not fit and were skipped)",
        f"end-to-end cycle error: max {100 * s['max_cycle_error']:.3f}% (goal <= 2%)",
        f"per-layer cycle error:  max {100 * s['max_layer_cycle_error']:.3f}% (goal <= 5%)",
        f"end-to-end energy error: max {100 * s['max_energy_error']:.3f}%, per layer max "
        f"{100 * s['max_layer_energy_error']:.3f}%",
        f"layers whose every counter the estimator predicts exactly: "
        f"{s['layers_with_identical_counters']} / {s['layers']}",
        f"estimator time per network: max {1e3 * s['max_estimate_s']:.1f} ms "
        f"(its instructions' events are decoded once at compile time)",
    ])
