"""BOMP-NAS's claim on Fashion-MNIST: after a mixed-precision search, the smallest mixed-
precision model within 1 percentage point of the best all-8-bit model found, and how much
smaller it is (goal >= 40 %).

Reads a finished search run (`codesign search configs/experiments/fashion.yaml`), reloads the
trained models the trials saved, measures both on the whole test split with the integer
semantics of the accelerator (the numpy reference, bit-exact with the RTL) and on the RTL
(cycles, energy, accuracy on --rtl-images), and writes bench/results/<experiment name>.json.
Usage: python bench/fashion_bench.py RUN_DIR [--rtl-images N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402

from codesign.data import get_dataset  # noqa: E402
from codesign.evaluate import get_evaluator  # noqa: E402
from codesign.experiment import load_experiment  # noqa: E402
from codesign.report import completed  # noqa: E402
from codesign.search import load_model  # noqa: E402
from codesign.study import open_storage  # noqa: E402
from hw.config import load_accel_config  # noqa: E402

OUT = ROOT / "bench" / "results"


def all_8bit(trial) -> bool:
    c = trial.user_attrs["candidate"]
    return all(tuple(b["bits"]) == (8, 8) for b in c["blocks"]) and \
        tuple(c["classifier_bits"]) == (8, 8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--rtl-images", type=int, default=500)
    ap.add_argument("--images", type=int, help="test images for the reference (default: all)")
    args = ap.parse_args()
    exp = load_experiment(args.run_dir / "config.yaml")
    study = optuna.load_study(study_name=exp.name, storage=open_storage(args.run_dir))
    data = get_dataset(exp.dataset)
    config = load_accel_config(exp.accelerator)
    reference = get_evaluator("estimate", config, args.images)  # integer semantics
    n_test = min(args.images or len(data.x_test), len(data.x_test))
    trials = [t for t in completed(study)
              if (args.run_dir / "models" / f"trial{t.number}.pt").exists()]
    # Re-measured on the whole split: the all-8-bit trials, and the (at most 6 smallest)
    # mixed ones that came within 2 pp of the best of them on the search's test images.
    best_seen = max((t.user_attrs["metrics"]["accuracy"] for t in trials if all_8bit(t)),
                    default=None)
    if best_seen is None:
        raise SystemExit("no all-8-bit trial in the run: nothing to compare against")
    near = sorted((t for t in trials if not all_8bit(t)
                   and t.user_attrs["metrics"]["accuracy"] >= best_seen - 0.02),
                  key=lambda t: t.user_attrs["metrics"]["size_bits"])[:6]
    trials = [t for t in trials if all_8bit(t)] + near
    print(f"measuring {len(trials)} trials on {n_test} test images with the integer reference",
          flush=True)
    measured = []
    for t in trials:
        model = load_model(args.run_dir / "models" / f"trial{t.number}.pt", data.classes)
        m = reference.evaluate(model, data)
        measured.append({"trial": t.number, "all_8bit": all_8bit(t), "accuracy": m.accuracy,
                         "size_bits": m.size_bits, "cycles": m.cycles, "energy_j": m.energy_j,
                         "candidate": t.user_attrs["description"]})
        print(f"  trial {t.number:>2}: accuracy {m.accuracy:.4f}, {m.size_bits:>7} bits, "
              f"{m.cycles:>7} cycles  {t.user_attrs['description']}", flush=True)
    eights = [r for r in measured if r["all_8bit"]]
    best8 = max(eights, key=lambda r: (r["accuracy"], -r["size_bits"]))
    close = [r for r in measured if not r["all_8bit"]
             and r["accuracy"] >= best8["accuracy"] - 0.01]
    result = {"run_dir": str(args.run_dir), "test_images": n_test,
              "trials": measured, "best_8bit": best8}
    print(f"\nbest all-8-bit model: trial {best8['trial']}, accuracy {best8['accuracy']:.4f}, "
          f"{best8['size_bits']} bits")
    if close:
        mixed = min(close, key=lambda r: (r["size_bits"], -r["accuracy"]))
        rtl = get_evaluator("rtl", config, args.rtl_images)
        for r in (best8, mixed):
            model = load_model(args.run_dir / "models" / f"trial{r['trial']}.pt", data.classes)
            m = rtl.evaluate(model, data)
            r["rtl"] = {"accuracy": m.accuracy, "images": m.images, "cycles": m.cycles,
                        "latency_s": m.latency_s, "energy_j": m.energy_j}
        reduction = 1 - mixed["size_bits"] / best8["size_bits"]
        result |= {"mixed": mixed, "size_reduction": reduction,
                   "accuracy_loss_pp": 100 * (best8["accuracy"] - mixed["accuracy"]),
                   "goal_met": reduction >= 0.40}
        for name, r in (("all-8-bit", best8), ("mixed", mixed)):
            print(f"{name:>10}: trial {r['trial']}, accuracy {r['accuracy']:.4f} (reference, "
                  f"{n_test} images) / {r['rtl']['accuracy']:.4f} (RTL, "
                  f"{r['rtl']['images']}), {r['size_bits']} bits, {r['rtl']['cycles']} cycles, "
                  f"{r['rtl']['energy_j'] * 1e9:.1f} nJ on the RTL; {r['candidate']}")
        print(f"size reduction {100 * reduction:.1f} % at {result['accuracy_loss_pp']:.2f} pp "
              f"accuracy loss (goal: >= 40 % at <= 1 pp): "
              f"{'met' if result['goal_met'] else 'NOT met'}")
    else:
        result["goal_met"] = False
        print("no mixed-precision model within 1 pp of the best all-8-bit model")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{exp.name}.json"  # fashion.json, fashion-bits.json
    path.write_text(json.dumps(result, indent=2))
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
