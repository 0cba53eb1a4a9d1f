"""The BNN survey's empirical review (arXiv 2206.12322), reproduced on this stack: a binary
ResNet-style network (8-bit stem and classifier, six binary 3x3 blocks 16-16-32/2-32-64/2-64)
trained with each repair in isolation and with their combination, several seeds; accuracy on
the test images with the integer semantics, cycles and energy on the RTL (bit-exact with the
reference, checked), beside the float version of the same architecture.

Repairs (codesign.models.BlockSpec, codesign.train.TrainConfig): double residual (a shortcut
around every binary conv, the add in int8), 8-bit downsampling shortcuts (with the residuals),
feature normalization (batch norm before each sign, folded), the ApproxSign binarizer, a
learnable threshold before each sign (folded into the producer's bias), two-step training.
Trained models are kept under runs/bnn-bench/. Writes bench/results/bnn.json and bnn.png. With
--cifar DIR the same on CIFAR-10.
Usage: python bench/bnn_bench.py [--seeds 3] [--train-images N] [--images N] [--cifar DIR]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from codesign.data import get_dataset  # noqa: E402
from codesign.evaluate import CALIBRATION_IMAGES, compile_quantnet  # noqa: E402
from codesign.models import BlockSpec, Candidate  # noqa: E402
from codesign.train import TrainConfig  # noqa: E402
from hw.config import load_accel_config  # noqa: E402
from hw.energy import energy_of  # noqa: E402

from benchlib import cached_model, write_results  # noqa: E402

MODELS = ROOT / "runs" / "bnn-bench"
STAGES = ((16, 1), (16, 1), (32, 2), (32, 1), (64, 2), (64, 1))  # binary blocks: width, stride

# method -> (block options, two-step training)
METHODS = {
    "plain": ({}, False),
    "double_residual": ({"residual": True}, False),
    "residual+shortcut8": ({"residual": True, "shortcut8": True}, False),
    "norm": ({"norm": True}, False),
    "approxsign": ({"binarizer": "approxsign"}, False),
    "threshold": ({"binarizer": "threshold"}, False),
    "two_step": ({}, True),
    "combined": ({"residual": True, "shortcut8": True, "norm": True,
                  "binarizer": "approxsign"}, True),  # every repair (chosen before measuring)
    "best_combination": ({"norm": True, "binarizer": "approxsign"}, True),  # those that helped
}


def network(options: dict, bits=(1, 1)) -> Candidate:
    blocks = [BlockSpec(16, 1, 3, bits=(8, 8))]
    blocks += [BlockSpec(w, s, 3, bits=bits, **options) for w, s in STAGES]
    return Candidate(tuple(blocks), "flatten", (8, bits[1]))


def trained(name: str, cand: Candidate, data, cfg: TrainConfig):
    budget = f"{data.name}-{len(data.x_train)}-{cfg.pretrain_epochs}+{cfg.epochs}"
    return cached_model(MODELS / budget / f"{name}.pt", cand, data, cfg)


def measure(model, data, images: int, config) -> dict:
    """Accuracy on the test images (integer reference), cycles and energy of one inference on
    the RTL, and whether the RTL's logits equal the reference's on a few images."""
    net = compile_quantnet(model, config, data.x_train[:CALIBRATION_IMAGES])
    correct = 0
    with net.runner("reference") as ref:
        for i in range(images):
            correct += int(np.argmax(ref(data.x_test[i:i + 1])) == data.y_test[i])
        with net.runner("rtl") as rtl:
            exact = all(np.array_equal(rtl(data.x_test[i:i + 1]), ref(data.x_test[i:i + 1]))
                        for i in range(3))
            energy = sum(energy_of(r.counters, config.energy, config.vector_width).total_j
                         for r in rtl.layer_runs)
            cycles = rtl.cycles
    return {"accuracy": correct / images, "cycles": cycles, "energy_j": energy,
            "size_bits": model.size_bits(), "bit_exact": exact,
            "host_ops": [p.op for p in net.placement if p.where != "tta"]}


def float_accuracy(model, data, images: int) -> float:
    with torch.no_grad(), model.float_view() as f:
        logits = f(torch.from_numpy(data.x_test[:images]))
    return float((logits.argmax(1).numpy() == data.y_test[:images]).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-images", type=int, default=6000)
    ap.add_argument("--images", type=int, default=2000, help="test images measured")
    ap.add_argument("--epochs", type=int, default=2, help="QAFT epochs (after 1 float)")
    ap.add_argument("--cifar", help="CIFAR-10 directory (python batches): run there too")
    args = ap.parse_args()
    config = load_accel_config("default")
    sets = [("fashion-mnist", None)] + ([("cifar10", args.cifar)] if args.cifar else [])
    results = {"accelerator": config.name, "seeds": args.seeds, "train_images": args.train_images,
               "images": args.images, "qaft_epochs": args.epochs, "datasets": {}}
    for name, path in sets:
        full = get_dataset(name, path)
        rng = np.random.default_rng(0)
        pick = rng.permutation(len(full.x_train))[:args.train_images]
        data = replace(full, x_train=full.x_train[pick], y_train=full.y_train[pick])
        cfg = TrainConfig(epochs=args.epochs, pretrain_epochs=1, batch_size=128, lr=3e-3)
        rows = {}
        floats = []
        for seed in range(args.seeds):
            model, _ = trained(f"float-{seed}", network({}, (8, 8)), data,
                               replace(cfg, epochs=0, pretrain_epochs=1 + args.epochs,
                                       seed=seed))
            floats.append(float_accuracy(model, data, args.images))
        print(f"{name}: float {np.mean(floats):.4f} +- {np.std(floats):.4f}", flush=True)
        for method, (options, two_step) in METHODS.items():
            runs = []
            for seed in range(args.seeds):
                model, took = trained(f"{method}-{seed}", network(options), data,
                                      replace(cfg, seed=seed, two_step=two_step))
                runs.append(measure(model, data, args.images, config) |
                            {"train_s": took})
            acc = [r["accuracy"] for r in runs]
            rows[method] = {"accuracy_mean": float(np.mean(acc)),
                            "accuracy_std": float(np.std(acc)),
                            "cycles": runs[0]["cycles"], "energy_j": runs[0]["energy_j"],
                            "size_bits": runs[0]["size_bits"],
                            "bit_exact": all(r["bit_exact"] for r in runs),
                            "host_ops": runs[0]["host_ops"], "runs": runs}
            print(f"  {method:<20} {np.mean(acc):.4f} +- {np.std(acc):.4f}  "
                  f"{runs[0]['cycles']:>8} cycles  {runs[0]['energy_j'] * 1e6:7.3f} uJ  "
                  f"exact {rows[method]['bit_exact']}", flush=True)
        plain, fl = rows["plain"]["accuracy_mean"], float(np.mean(floats))
        for r in rows.values():
            r["gap_recovered"] = (r["accuracy_mean"] - plain) / (fl - plain) if fl > plain else 0
            r["cycles_added"] = r["cycles"] / rows["plain"]["cycles"] - 1
            r["energy_added"] = r["energy_j"] / rows["plain"]["energy_j"] - 1
        results["datasets"][name] = {"float_accuracy_mean": fl,
                                     "float_accuracy_std": float(np.std(floats)),
                                     "methods": rows}
        print(f"  best combination recovers {100 * rows['best_combination']['gap_recovered']:.0f}%"
              f" of the plain-to-float gap", flush=True)
    write_results("bnn", results, plot)


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = results["datasets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.5), squeeze=False)
    for ax, (name, d) in zip(axes[0], sets.items()):
        plain = d["methods"]["plain"]["accuracy_mean"]
        for method, r in d["methods"].items():
            ax.errorbar(100 * r["energy_added"], 100 * (r["accuracy_mean"] - plain),
                        yerr=100 * r["accuracy_std"], fmt="o", capsize=3)
            ax.annotate(method, (100 * r["energy_added"], 100 * (r["accuracy_mean"] - plain)),
                        fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.axhline(100 * (d["float_accuracy_mean"] - plain), color="k", ls="--",
                   label="float version")
        ax.set_xlabel("energy added on the accelerator (%)")
        ax.set_ylabel("accuracy gained over plain binary (pp)")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
