"""Stochastic bitwise ensembles on Fashion-MNIST (arXiv 1611.06539): a binary and a ternary
network (8-bit first layer and classifier) trained once with real-valued latent weights;
members sampled by stochastic rounding (LFSR-seeded, reproducible); accuracy of the summed
logits for K = 1, 2, 4, 8, 16 on the test images (integer semantics), the RTL cycles and energy
of each K with the shared 8-bit first layer run once; beside them the deterministic rounding
of the same weights and a float model of the same architecture and training budget.

Trained models are kept under runs/ensemble-bench/. Writes bench/results/ensemble.json and
ensemble.png. Usage: python bench/ensemble_bench.py [--images N] [--members K] [--train-images N]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from codesign.data import get_dataset  # noqa: E402
from codesign.ensemble import (accuracy_by_size, compile_members, member_cost,  # noqa: E402
                               member_logits)
from codesign.evaluate import CALIBRATION_IMAGES, compile_quantnet  # noqa: E402
from codesign.models import BlockSpec, Candidate  # noqa: E402
from codesign.train import TrainConfig  # noqa: E402
from hw.config import load_accel_config  # noqa: E402

from benchlib import cached_model, write_results  # noqa: E402

MODELS = ROOT / "runs" / "ensemble-bench"
TRAIN = TrainConfig(epochs=3, pretrain_epochs=1, batch_size=128, lr=3e-3)
FLOAT = TrainConfig(epochs=0, pretrain_epochs=4, batch_size=128, lr=3e-3)  # the same budget


def network(inner: tuple[int, int]) -> Candidate:
    """conv 32 (8-bit, reads the image), conv 64 /2 and conv 64 /2 at `inner` bits, an 8-bit
    classifier reading the last one's output."""
    return Candidate((BlockSpec(32, 1, 3, bits=(8, 8)), BlockSpec(64, 2, 3, bits=inner),
                      BlockSpec(64, 2, 3, bits=inner)), "flatten", (8, inner[1]))


def trained(name: str, cand: Candidate, data, cfg: TrainConfig):
    budget = f"{len(data.x_train)}-{cfg.pretrain_epochs}+{cfg.epochs}"
    return cached_model(MODELS / budget / f"{name}.pt", cand, data, cfg)[0]


def float_accuracy(model, images, labels) -> float:
    with torch.no_grad(), model.float_view() as f:
        return float((f(torch.from_numpy(images)).argmax(1).numpy() == labels).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--train-images", type=int, default=20000)
    args = ap.parse_args()
    full = get_dataset("fashion-mnist")
    pick = np.random.default_rng(0).permutation(len(full.x_train))[:args.train_images]
    data = replace(full, x_train=full.x_train[pick], y_train=full.y_train[pick])
    config = load_accel_config("default")
    images, labels = data.x_test[:args.images], data.y_test[:args.images]
    cal = data.x_train[:CALIBRATION_IMAGES]
    sizes = [k for k in (1, 2, 4, 8, 16, 32) if k <= args.members]
    base = trained("float", network((8, 8)), data, FLOAT)
    results = {"images": args.images, "accelerator": config.name, "members": args.members,
               "train_images": len(data.x_train),
               "float_accuracy": float_accuracy(base, images, labels),
               "train": {"bitwise": vars(TRAIN), "float": vars(FLOAT)}, "networks": {}}
    print(f"float model ({FLOAT.pretrain_epochs} float epochs): "
          f"{results['float_accuracy']:.4f} on {args.images} test images", flush=True)
    for name, inner in (("binary", (1, 1)), ("ternary", (2, 2))):
        start = time.time()
        model = trained(name, network(inner), data, TRAIN)

        def compile_one(m):
            return compile_quantnet(m, config, cal)
        members = compile_members(model, model.quant_spec(), args.members, 0, compile_one)
        logits = member_logits(members, images)
        acc = accuracy_by_size(logits, labels, sizes)
        single = member_logits([compile_one(model)], images)[0]
        deterministic = float(np.mean(np.argmax(single, axis=1) == labels))
        cost = member_cost(members, images[:1], "rtl")
        rows = []
        for k in sizes:
            cycles, saved = sum(cost.cycles[:k]), sum(cost.saved_cycles[:k])
            rows.append({"members": k, "accuracy": acc[k], "cycles": cycles,
                         "cycles_unshared": cycles + saved, "saved_cycles": saved,
                         "energy_j": sum(cost.energy_j[:k])})
        results["networks"][name] = {
            "candidate": model.candidate.describe(),
            "deterministic_accuracy": deterministic, "qat_float_view_accuracy":
                float_accuracy(model, images, labels),
            "member_accuracy": [float(np.mean(np.argmax(m, axis=1) == labels)) for m in logits],
            "bit_exact_on_rtl": cost.bit_exact, "sizes": rows}
        print(f"{name}: deterministic {deterministic:.4f}; " + ", ".join(
            f"K={r['members']} {r['accuracy']:.4f} ({r['cycles']} cycles, "
            f"{r['energy_j'] * 1e6:.2f} uJ, {r['saved_cycles']} saved)" for r in rows)
            + f"; RTL = reference {cost.bit_exact}  [{time.time() - start:.0f} s]", flush=True)
    write_results("ensemble", results, plot)


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, r in results["networks"].items():
        ks = [s["members"] for s in r["sizes"]]
        axes[0].plot(ks, [s["accuracy"] for s in r["sizes"]], marker="o", label=name)
        axes[1].plot(ks, [s["cycles"] for s in r["sizes"]], marker="o", label=name)
    axes[0].axhline(results["float_accuracy"], color="k", ls="--", label="float model")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("members K")
        ax.legend()
    axes[0].set_ylabel("accuracy (summed logits)")
    axes[1].set_ylabel("RTL cycles per inference (all members)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
