"""The BOMP-NAS ablation: quantization-aware fine-tuning in the loop vs post-training
quantization, on the same candidates with the same training budget.

Each candidate (drawn at random from a search space, seeded) is trained in float for P epochs;
then either Q more float epochs and post-training quantization (the compiler calibrates the
activation scales on 64 training images) or Q epochs of quantization-aware fine-tuning. Both
arms are measured with the integer semantics the accelerator runs (the numpy reference,
bit-exact with the RTL) on the whole test split.

Prints the table and means; writes bench/results/qaft.json.
Usage: python bench/qaft_bench.py [--candidates N] [--dataset digits|fashion-mnist]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codesign.data import get_dataset  # noqa: E402
from codesign.evaluate import get_evaluator  # noqa: E402
from codesign.experiment import load_experiment  # noqa: E402
from codesign.models import build_model  # noqa: E402
from codesign.quant import set_quantization  # noqa: E402
from codesign.train import accuracy, train  # noqa: E402
from hw.config import load_accel_config  # noqa: E402

OUT = ROOT / "bench" / "results"
EXPERIMENTS = {"digits": "digits.yaml", "fashion-mnist": "fashion.yaml"}


def candidates(space, n: int, seed: int):
    """n random candidates, then the all-8-bit versions of the first third of them."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed),
                                directions=["maximize"])
    drawn = [space.suggest(study.ask())[0] for _ in range(n)]
    eight = [replace(c, blocks=tuple(replace(b, bits=(8, 8)) for b in c.blocks),
                     classifier_bits=(8, 8)) for c in drawn[:max(1, n // 3)]]
    return drawn + eight


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=12)
    ap.add_argument("--dataset", default="digits", choices=list(EXPERIMENTS))
    ap.add_argument("--images", type=int, help="test images (default: all)")
    args = ap.parse_args()
    exp = load_experiment(ROOT / "configs" / "experiments" / EXPERIMENTS[args.dataset])
    data = get_dataset(args.dataset)
    cfg = exp.search.train
    pre, fine = cfg.pretrain_epochs, max(1, cfg.epochs)
    evaluator = get_evaluator("estimate", load_accel_config(exp.accelerator), args.images)
    rows = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for i, cand in enumerate(candidates(exp.search.space, args.candidates, seed=7)):
        start = time.time()
        model = build_model(cand, data.input_shape, data.classes, exp.seed)
        if pre:
            model = train(model, data, replace(cfg, pretrain_epochs=pre, epochs=0))
        ptq = train(copy.deepcopy(model), data, replace(cfg, pretrain_epochs=fine, epochs=0))
        qaft = train(model, data, replace(cfg, pretrain_epochs=0, epochs=fine))
        set_quantization(ptq, False)
        float_acc = accuracy(ptq, data)
        set_quantization(ptq, True)
        row = {"candidate": cand.describe(), "all_8bit": _all_8bit(cand),
               "float": float_acc, "ptq": evaluator.evaluate(ptq, data).accuracy,
               "qaft": evaluator.evaluate(qaft, data).accuracy, "seconds": time.time() - start}
        rows.append(row)
        print(f"{i:>2} float {row['float']:.3f}  PTQ {row['ptq']:.3f}  QAFT {row['qaft']:.3f}  "
              f"{row['candidate']}", flush=True)
    summary = {}
    trained = [r for r in rows if r["float"] >= 0.8]  # candidates the budget trains at all
    for name, sel in (("all", rows), ("all-8-bit", [r for r in rows if r["all_8bit"]]),
                      ("mixed/low-bit", [r for r in rows if not r["all_8bit"]]),
                      ("float >= 0.8, 8-bit", [r for r in trained if r["all_8bit"]]),
                      ("float >= 0.8, mixed", [r for r in trained if not r["all_8bit"]])):
        if sel:
            summary[name] = {k: float(np.mean([r[k] for r in sel]))
                             for k in ("float", "ptq", "qaft")}
            summary[name]["n"] = len(sel)
            summary[name]["qaft_better"] = sum(r["qaft"] > r["ptq"] for r in sel)
            print(f"{name:>20} ({len(sel)}): mean accuracy float {summary[name]['float']:.3f}, "
                  f"PTQ {summary[name]['ptq']:.3f}, QAFT {summary[name]['qaft']:.3f} "
                  f"(QAFT better on {summary[name]['qaft_better']})")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"qaft_{args.dataset}.json"
    path.write_text(json.dumps({"dataset": args.dataset, "pretrain_epochs": pre,
                                "finetune_epochs": fine, "rows": rows, "summary": summary},
                               indent=2))
    print(f"figures: {path}")


def _all_8bit(cand) -> bool:
    return all(b.bits == (8, 8) for b in cand.blocks) and cand.classifier_bits == (8, 8)


if __name__ == "__main__":
    main()
