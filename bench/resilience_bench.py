"""Error resilience on Fashion-MNIST: CCR against BER for an 8-bit, a ternary and a binary
network (95% intervals, per site); agreement of the reference and RTL fault engines and the
injections per second of each; the topology-based predictor against measured CCR over
candidates drawn from the Fashion-MNIST search space (Spearman rho).

Trained models are kept under runs/resilience-bench/ (a rerun measures without training).
Writes bench/results/resilience.json, resilience_ccr.png and resilience_predictor.png.
Usage: python bench/resilience_bench.py [--candidates N] [--ber B] [--agreement N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402

from codesign.data import get_dataset  # noqa: E402
from codesign.evaluate import CALIBRATION_IMAGES, compile_quantnet  # noqa: E402
from codesign.faults import draw, select  # noqa: E402
from codesign.models import BlockSpec, Candidate  # noqa: E402
from codesign.resilience import (FaultEngine, MachineFaultEngine, campaign,  # noqa: E402
                                 injections_needed)
from codesign.sensitivity import predicted_ccr  # noqa: E402
from codesign.space import load_space  # noqa: E402
from codesign.train import TrainConfig, accuracy  # noqa: E402
from hw.config import load_accel_config  # noqa: E402

from benchlib import cached_model  # noqa: E402

OUT = ROOT / "bench" / "results"
MODELS = ROOT / "runs" / "resilience-bench"
BERS = (1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
SITES = ("weights", "params", "activations", "accumulators")
TRAIN = TrainConfig(epochs=1, pretrain_epochs=1, batch_size=128, lr=3e-3, time_limit_s=90)
PRECISION_TRAIN = TrainConfig(epochs=2, pretrain_epochs=2, batch_size=128, lr=3e-3)


def precisions() -> dict[str, Candidate]:
    """One architecture at three precisions (the first layer reads the 8-bit image)."""
    def net(first, rest):
        return Candidate((BlockSpec(16, 2, 3, bits=first), BlockSpec(32, 2, 3, bits=rest)),
                         "flatten", rest)
    return {"int8": net((8, 8), (8, 8)), "ternary": net((2, 8), (2, 2)),
            "binary": net((1, 8), (1, 1))}


def sampled(n: int, seed: int = 0) -> list[Candidate]:
    """n distinct candidates of the Fashion-MNIST search space, drawn at random."""
    space = load_space("fashion")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found: dict[str, Candidate] = {}
    while len(found) < n:
        cand, _ = space.suggest(study.ask())
        found.setdefault(json.dumps(cand.to_dict(), sort_keys=True), cand)
    return list(found.values())


def trained(name: str, cand: Candidate, data, train_cfg: TrainConfig = TRAIN):
    return cached_model(MODELS / f"{name}.pt", cand, data, train_cfg)[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=32)
    ap.add_argument("--ber", type=float, default=1e-4, help="BER of the predictor check")
    ap.add_argument("--injections", type=int, default=9604, help="per candidate (+-1%% at 95%%)")
    ap.add_argument("--agreement", type=int, default=1000, help="faults compared on the RTL")
    ap.add_argument("--images", type=int, default=500, help="test images the faults run on")
    ap.add_argument("--train-only", action="store_true", help="train and keep the models")
    ap.add_argument("--sections", default="curves,protection,schemes,predictor",
                    help="what to measure (the others are kept from the last results)")
    args = ap.parse_args()
    if args.train_only:
        data = get_dataset("fashion-mnist")
        for prec, cand in precisions().items():
            trained(f"precision-{prec}", cand, data, PRECISION_TRAIN)
        for i, cand in enumerate(sampled(args.candidates)):
            trained(f"cand{i:02d}", cand, data)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    data = get_dataset("fashion-mnist")
    config = load_accel_config("default")
    images, labels = data.x_test[:args.images], data.y_test[:args.images]
    calib = data.x_train[:CALIBRATION_IMAGES]
    sections = set(args.sections.split(","))
    path = OUT / "resilience.json"
    result: dict = json.loads(path.read_text()) if path.exists() else {}
    result |= {"ber_grid": list(BERS), "images": args.images, "confidence": 0.95}
    if "curves" in sections:
        curves_and_engines(result, data, config, images, labels, calib, args.agreement)
        path.write_text(json.dumps(result, indent=1))  # each section kept as it finishes
    if "protection" in sections:
        result["protection"] = protection_vs_topology(data, config, images, labels, calib)
        path.write_text(json.dumps(result, indent=1))
    if "schemes" in sections:
        result["schemes"] = quantization_schemes(data, config, images, labels, calib)
        path.write_text(json.dumps(result, indent=1))
    if "predictor" in sections:
        predictor_check(result, data, config, images, labels, calib, args)
        path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


def curves_and_engines(result, data, config, images, labels, calib, n_agree) -> None:
    """CCR against BER at three precisions, all sites together and each alone; the engines'
    agreement and speed."""
    n_all, n_site = injections_needed(0.01), injections_needed(0.02)
    result["injections"] = {"all_sites": n_all, "per_site": n_site}
    curves = {}
    for prec, cand in precisions().items():
        model = trained(f"precision-{prec}", cand, data, PRECISION_TRAIN)
        net = compile_quantnet(model, config, calib)
        engine = FaultEngine(net)
        trace = engine.trace(images)
        entry = {"candidate": cand.describe(), "accuracy": float(accuracy(model, data)),
                 "size_bits": model.size_bits(), "curves": {}}
        for sites, n in [(SITES, n_all)] + [((s,), n_site) for s in SITES]:
            key = "+".join(sites) if len(sites) > 1 else sites[0]
            key = "all" if len(sites) == len(SITES) else key
            entry["curves"][key] = [campaign(engine, trace, labels, ber, n, sites).as_dict()
                                    for ber in BERS]
        mid = 1e-5  # which layer is most sensitive: each layer alone, all its sites
        per_layer = [campaign(engine, trace, labels, mid, n_site, SITES, (layer.name,))
                     for layer in net.layers]
        entry["per_layer"] = [p.as_dict() for p in per_layer]
        entry["most_sensitive_layer"] = max(per_layer, key=lambda p: p.ccr).layers[0]
        curves[prec] = entry
        row = ", ".join(f"{p['ber']:.0e}: {p['ccr']:.3f}" for p in entry["curves"]["all"])
        print(f"{prec:>8} (accuracy {entry['accuracy']:.3f}): CCR {row}", flush=True)
        if prec == "int8":
            result["engines"] = agreement(net, engine, trace, images, n_agree)
    result["precisions"] = curves
    plot_curves(curves, OUT / "resilience_ccr.png")


def protection_vs_topology(data, config, images, labels, calib) -> dict:
    """The int8 network with its data memory unprotected, parity or SECDED, against the
    ternary and binary networks: CCR at each BER, and energy per inference (estimator)."""
    from dataclasses import replace as with_field

    from compiler.estimate import estimate
    from hw.energy import energy_of
    n = injections_needed(0.02)
    rows = {}
    for prec, cand in precisions().items():
        model = trained(f"precision-{prec}", cand, data, PRECISION_TRAIN)
        for prot in (("none", "parity", "secded") if prec == "int8" else ("none",)):
            cfg = with_field(config, dmem_protection=prot)
            net = compile_quantnet(model, cfg, calib)
            energy = sum(energy_of(c, cfg.energy, cfg.vector_width).total_j
                         for c in estimate(net.program).values())
            engine = FaultEngine(net)
            trace = engine.trace(images)
            pts = [campaign(engine, trace, labels, ber, n, SITES) for ber in BERS[4:]]
            key = f"{prec}/{prot}"
            rows[key] = {"energy_j": energy, "accuracy": float(np.mean(
                trace.logits.argmax(axis=1) == labels)), "points": [p.as_dict() for p in pts]}
            print(f"  {key:<14} {energy * 1e9:6.1f} nJ  CCR " + ", ".join(
                f"{p.ber:.0e}: {p.ccr:.3f}" + (f" ({p.detected} detected)" if p.detected else "")
                for p in pts), flush=True)
    return {"injections": n, "sites": list(SITES), "networks": rows}


def quantization_schemes(data, config, images, labels, calib) -> dict:
    """The seed's comparison of quantization schemes: each precision network compiled with
    per-channel and with per-tensor weight scales (the same trained model), CCR at each BER."""
    import torch
    from dataclasses import replace as with_field

    from compiler.pipeline import compile_model
    n = injections_needed(0.02)
    rows = {}
    for prec, cand in precisions().items():
        model = trained(f"precision-{prec}", cand, data, PRECISION_TRAIN)
        for scales in ("per_channel", "per_tensor"):
            spec = model.quant_spec()
            spec = with_field(spec, default=with_field(spec.default, scales=scales),
                              layers={k: with_field(v, scales=scales)
                                      for k, v in spec.layers.items()})
            with model.float_view() as float_model:
                net = compile_model(float_model, torch.zeros((1, *model.input_shape)), config,
                                    spec, calib)
            engine = FaultEngine(net)
            trace = engine.trace(images)
            pts = [campaign(engine, trace, labels, ber, n, SITES) for ber in BERS[4:]]
            key = f"{prec}/{scales}"
            rows[key] = {"accuracy": float(np.mean(trace.logits.argmax(axis=1) == labels)),
                         "points": [p.as_dict() for p in pts]}
            print(f"  {key:<20} accuracy {rows[key]['accuracy']:.3f}  CCR " + ", ".join(
                f"{p.ber:.0e}: {p.ccr:.3f}" for p in pts), flush=True)
    return {"injections": n, "sites": list(SITES), "networks": rows}


def predictor_check(result, data, config, images, labels, calib, args) -> None:
    """The topology predictor against measured CCR over sampled candidates."""
    rows = []
    for i, cand in enumerate(sampled(args.candidates)):
        model = trained(f"cand{i:02d}", cand, data)
        net = compile_quantnet(model, config, calib)
        engine = FaultEngine(net)
        trace = engine.trace(images)
        p = campaign(engine, trace, labels, args.ber, args.injections, SITES, seed=i)
        start = time.perf_counter()
        pred = predicted_ccr(net.layers, args.ber)
        ms = (time.perf_counter() - start) * 1e3
        rows.append({"candidate": cand.describe(), "accuracy": float(accuracy(model, data)),
                     "ccr": p.ccr, "ccr_ci": list(p.ccr_ci), "predicted": pred,
                     "predictor_ms": ms})
        print(f"  cand{i:02d}: CCR {p.ccr:.3f} predicted {pred:.3f} ({ms:.1f} ms)  "
              f"{cand.describe()}", flush=True)
    ccr = np.array([r["ccr"] for r in rows])
    pred = np.array([r["predicted"] for r in rows])
    rho = spearman(ccr, pred)
    result["predictor"] = {"ber": args.ber, "injections": args.injections, "candidates": rows,
                           "spearman": rho}
    print(f"predictor: Spearman rho {rho:.3f} over {len(rows)} candidates at BER {args.ber:g}")
    plot_predictor(ccr, pred, rho, args.ber, OUT / "resilience_predictor.png")


def agreement(net, engine, trace, images, n: int) -> dict:
    """The same sampled memory faults (weights, params, activations) on both engines: the
    network outputs compared bit for bit; injections per second of each."""
    tensors = select(net.layers, ("weights", "params", "activations"))
    ber = 2.0 / sum(t.bits for t in tensors)  # about two flipped bits per injection
    rng = np.random.default_rng(7)
    rtl = MachineFaultEngine(net, "rtl")
    same = changed = 0
    ref_s = rtl_s = 0.0
    try:
        for i in range(n):
            flips = draw(tensors, ber, 1, rng)
            img = np.array([i % len(images)])
            t0 = time.perf_counter()
            ref = engine.run(trace, img, flips)[0]
            t1 = time.perf_counter()
            got = rtl.run(images[img[0]], flips)
            rtl_s += time.perf_counter() - t1
            ref_s += t1 - t0
            same += int(np.array_equal(ref.ravel(), got.ravel()))
            changed += int(ref.argmax() != trace.logits[img[0]].argmax())
    finally:
        rtl.close()
    batch = campaign(engine, trace, np.zeros(len(images), np.int64), ber, 5000,
                     ("weights", "params", "activations"))
    out = {"faults": n, "identical_outputs": same, "decisions_changed": changed,
           "rtl_injections_per_s": n / rtl_s, "reference_one_at_a_time_per_s": n / ref_s,
           "reference_batched_per_s": batch.injections / batch.seconds}
    print(f"engines: {same}/{n} faulty inferences identical on the RTL and the reference "
          f"({changed} decisions changed); RTL {out['rtl_injections_per_s']:.0f}/s, reference "
          f"batched {out['reference_batched_per_s']:.0f}/s "
          f"({out['reference_batched_per_s'] / out['rtl_injections_per_s']:.0f}x)", flush=True)
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # ties share their mean rank
            r[v == value] = r[v == value].mean()
        return r
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def plot_curves(curves: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for prec, entry in curves.items():
        for ax, key in ((axes[0], "all"), (axes[1], "weights")):
            pts = entry["curves"][key]
            ber = [p["ber"] for p in pts]
            ccr = np.array([p["ccr"] for p in pts])
            lo, hi = (np.array([p["ccr_ci"][k] for p in pts]) for k in (0, 1))
            ax.errorbar(ber, ccr, yerr=[ccr - lo, hi - ccr], marker="o", capsize=3, label=prec)
    for ax, title in zip(axes, ("all sites", "weights only")):
        ax.set_xscale("log")
        ax.set_xlabel("bit-error rate")
        ax.set_ylabel("classification change rate")
        ax.set_title(f"Fashion-MNIST, {title} (95% intervals)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_predictor(ccr, pred, rho, ber, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(pred, ccr)
    ax.set_xlabel("predicted CCR (topology and bit widths)")
    ax.set_ylabel("measured CCR (fault injection)")
    ax.set_title(f"BER {ber:g}: Spearman rho = {rho:.2f}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
