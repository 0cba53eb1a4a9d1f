"""The search's own candidates, whole: N random candidates of every shipped search space
compiled for its accelerator as the search compiles them (quantizer scales as a training
step leaves them, one per quantizer), and per space: how many run as one accelerator run per
inference and why the others' runs start where they do, the share of energy moved off chip
(estimator), RTL = integer reference on one input and RTL cycles = estimate for each.
Writes bench/results/spaces.json and spaces.png.

  python bench/spaces_bench.py [--candidates 50] [--spaces demo,digits,...]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import write_results  # noqa: E402
from codesign.data import get_dataset  # noqa: E402
from codesign.evaluate import compile_quantnet  # noqa: E402
from codesign.experiment import load_experiment  # noqa: E402
from codesign.hwcost import network_cost  # noqa: E402
from codesign.models import build_model  # noqa: E402
from codesign.space import load_space  # noqa: E402
from hw.config import load_accel_config  # noqa: E402

# experiment configs (their space, data set and accelerator), and the widened space alone
SPACES = {"demo": "demo", "digits": "digits", "fashion": "fashion",
          "fashion-bits": "fashion-bits", "fashion-resilience": "fashion-resilience",
          "fashion-large": None}


def space_of(name: str):
    """(search space, input shape, accelerator config) of a shipped space."""
    if SPACES[name] is None:
        return (load_space(ROOT / f"configs/search/{name}.yaml"),
                get_dataset("fashion-mnist").input_shape, load_accel_config("default"))
    exp = load_experiment(ROOT / f"configs/experiments/{SPACES[name]}.yaml")
    return (exp.search.space, get_dataset(exp.dataset).input_shape,
            load_accel_config(exp.accelerator))


def reason(why: str) -> str:
    """A run's reason with layer names and scales taken out (to count them)."""
    return re.sub(r"scale [\d.e-]+", "scale S",
                  re.sub(r"\b(blocks|add|fc|avg|max|convert)[\w.]*", "L", why))


def measure(name: str, n: int) -> dict:
    space, shape, base = space_of(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    runs, why, offchip, exact, equal, failed = [], collections.Counter(), [], 0, 0, []
    for k in range(n):
        trial = study.ask()
        candidate, accel = space.suggest(trial)
        study.tell(trial, 0.0)
        config = space.accel_config(base, accel) if accel else base
        torch.manual_seed(k)
        model = build_model(candidate, shape, 10)
        model.train()
        with torch.no_grad():  # the quantizers' scales, as training leaves them
            model(torch.randn(16, *shape))
        model.eval()
        cal = np.random.default_rng(k).standard_normal((8, *shape)).astype(np.float32)
        try:
            net = compile_quantnet(model, config, cal)
        except Exception as exc:  # noqa: BLE001 - counted and named in the results
            failed.append(f"{candidate.describe()}: {exc}"[:300])
            continue
        runs.append(len(net.program.segments))
        why.update(reason(s.why) for s in net.program.segments[1:])
        cost = network_cost(net, "both", cal[:1])
        offchip.append(sum(la.energy_breakdown_j["offchip"] for la in cost.layers)
                       / cost.energy_j)
        equal += cost.rtl_cycles == cost.estimate_cycles
        with net.runner("rtl") as rtl, net.runner("reference") as ref:
            exact += bool(np.array_equal(rtl(cal[:1]), ref(cal[:1])) and all(
                np.array_equal(rtl.int_outputs[n], y) for n, y in ref.int_outputs.items()))
    r = {"candidates": n, "compiled": len(runs), "one_run": sum(x == 1 for x in runs),
         "runs_max": max(runs, default=0), "runs_mean": round(float(np.mean(runs)), 3),
         "offchip_share_median": round(float(np.median(offchip)), 4),
         "offchip_share_max": round(float(np.max(offchip)), 4),
         "rtl_equals_reference": exact, "rtl_equals_estimate": equal,
         "run_reasons": dict(why), "failed": failed}
    print(f"{name:<19} {r['one_run']}/{r['compiled']} in one run (most {r['runs_max']}), "
          f"off chip median {100 * r['offchip_share_median']:.1f}% of the energy, RTL = "
          f"reference {exact}/{len(runs)}, = estimate {equal}/{len(runs)}; "
          f"{dict(why) or ''}", flush=True)
    return r


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in SPACES if k in results]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(names, [results[k]["one_run"] / max(1, results[k]["compiled"]) for k in names],
           label="share in one run")
    ax.plot(names, [results[k]["offchip_share_median"] for k in names], "ko-",
            label="off-chip share of energy (median)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("random candidates of each shipped search space on the accelerator")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--spaces", default=",".join(SPACES))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # dead-signal warnings of random low-bit candidates
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    results = {name: measure(name, args.candidates) for name in args.spaces.split(",")}
    write_results("spaces", results, plot)


if __name__ == "__main__":
    main()
