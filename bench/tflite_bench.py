"""The official MLPerf Tiny int8 TFLite models (models/mlperf-tiny) on the TTA, as published:
compiled with their own quantization for tiny, default and wide and run on the RTL.

Per model and config: RTL cycles (= the estimator's), end-to-end utilization (MACs over cycles x
int8 lanes), latency at the clock, energy (the energy model), host ops, runs per inference, and
agreement with LiteRT on N inputs (random and the ends of the int8 range): bit-exact against its
reference kernels (BUILTIN_REF, the specification), and, beside it, how many outputs its default
(XNNPACK) and optimized builtin kernels give alike. The published figures are measured silicon
(MLPerf Tiny v1.0-1.3); ours is a model of an accelerator. Writes bench/results/tflite.json and
tflite.png.

  python bench/tflite_bench.py [--configs tiny,default,wide] [--inputs 100] [--models ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import write_results  # noqa: E402
from codesign.hwcost import network_cost  # noqa: E402
from compiler.errors import CompileError  # noqa: E402
from compiler.tflite import compile_tflite  # noqa: E402
from compiler.tflite.litert import LiteRT, compare  # noqa: E402
from compiler.zoo import TFLITE_MODELS  # noqa: E402
from hw.config import load_accel_config  # noqa: E402

MODELS = {  # file, benchmark, published figures (measured silicon): (latency ms, energy uJ)
    "resnet8": ("pretrainedResnet_quant.tflite", "image classification",
                {"GAP9 (v1.0)": (0.95, 27.71), "Syntiant NDP9120": (None, 101.8),
                 "Qualcomm Sensing Hub (v1.3)": (0.096, None)}),
    "ds_cnn": ("kws_ref_model.tflite", "keyword spotting",
               {"GAP9 (v1.0)": (0.73, 18.56), "Syntiant NDP9120": (4.37, 31.5),
                "Qualcomm Sensing Hub (v1.3)": (0.065, None)}),
    "mobilenet_v1": ("vww_96_int8.tflite", "visual wake words",
                     {"GAP9 (v1.0)": (1.73, 40.8), "Syntiant NDP9120": (12.7, 71.7),
                      "Qualcomm Sensing Hub (v1.3)": (0.114, None)}),
    "autoencoder": ("ad01_int8.tflite", "anomaly detection",
                    {"GAP9 (v1.0)": (0.27, 5.25), "Qualcomm Sensing Hub (v1.3)": (0.068, None)}),
}
GOALS = {"resnet8": 0.85, "ds_cnn": 0.75, "mobilenet_v1": 0.70, "autoencoder": 0.50}


def agreement(net, path: Path, n: int) -> dict:
    """Inputs on which the RTL's every layer and output equal LiteRT's reference kernels,
    and on which the other LiteRT kernels give the same outputs as the reference."""
    xs = net.random_inputs(n - 2, 7)
    xs = np.concatenate([xs, np.full((2, *net.input_shape), -128, np.int8)])
    xs[-1] = 127
    judges = {k: LiteRT(path, k) for k in ("reference", "builtin", "default")}
    exact, same = 0, {"builtin": 0, "default": 0}
    with net.runner("rtl") as rtl:
        for x in xs:
            y = rtl(x[None])
            ref, tensors = judges["reference"].run(x)
            ok = compare(rtl.int_outputs, tensors, judges["reference"]) is None
            exact += ok and np.array_equal(y.reshape(ref.shape), ref)
            for k in same:
                same[k] += bool(np.array_equal(judges[k].run(x)[0], ref))
    return {"inputs": len(xs), "bit_exact_vs_reference_kernels": exact,
            "reference_equals_builtin_kernels": same["builtin"],
            "reference_equals_default_xnnpack": same["default"]}


def measure(path: Path, config, n: int) -> dict:
    start = time.perf_counter()
    net = compile_tflite(path, config)
    compile_s = time.perf_counter() - start
    cost = network_cost(net, "both")
    macs = sum(b.macs for b in net.program.layers.values())
    layers = [{"name": m.name, "kind": m.kind, "cycles": m.cycles,
               "macs": net.program.layers[m.name].macs,
               "utilization": round(m.utilization, 4)} for m in cost.layers]
    return {"cycles": cost.cycles, "estimate_cycles": cost.estimate_cycles,
            "utilization": round(macs / (cost.cycles * config.lanes), 4), "macs": macs,
            "latency_ms": round(cost.latency_s * 1e3, 4),
            "energy_uj": round(cost.energy_j * 1e6, 4), "host_ops": list(cost.host_ops),
            "runs": len(net.program.segments), "instructions": len(net.program.program.words),
            "compile_s": round(compile_s, 2), **agreement(net, path, n), "layers": layers}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    names = list(results)
    configs = [c for c in ("tiny", "default", "wide") if any(c in results[m] for m in names)]
    for k, c in enumerate(configs):
        u = [results[m].get(c, {}).get("utilization", 0) for m in names]
        e = [results[m].get(c, {}).get("energy_uj", 0) for m in names]
        x = np.arange(len(names)) + 0.27 * (k - 1)
        a.bar(x, u, 0.27, label=c)
        b.bar(x, e, 0.27, label=f"{c} (model)")
    gap9 = [MODELS[m][2].get("GAP9 (v1.0)", (None, None))[1] or 0 for m in names]
    b.scatter(np.arange(len(names)), gap9, color="k", marker="x", zorder=3,
              label="GAP9, measured silicon")
    a.scatter(np.arange(len(names)), [GOALS[m] for m in names], color="k", marker="_", s=400,
              zorder=3, label="goal")
    for ax, title in ((a, "end-to-end utilization (int8 peak)"), (b, "energy per inference (uJ)")):
        ax.set_xticks(range(len(names)), names)
        ax.set_title(title)
        ax.legend(fontsize=8)
    b.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="tiny,default,wide")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--inputs", type=int, default=100, help="inputs checked against LiteRT")
    args = ap.parse_args()
    results: dict = {}
    for name in args.models.split(","):
        file, task, published = MODELS[name]
        path = TFLITE_MODELS / file
        results[name] = {"file": file, "task": task, "utilization_goal": GOALS[name],
                         "published_measured_silicon_ms_uj": published}
        for cname in args.configs.split(","):
            config = load_accel_config(cname)
            try:
                r = results[name][cname] = measure(path, config, args.inputs)
            except CompileError as exc:
                results[name][cname] = {"error": str(exc)}
                print(f"{name:<13} {cname:<8} does not compile: {exc}", flush=True)
                continue
            print(f"{name:<13} {cname:<8} {r['cycles']:>9} cycles "
                  f"{100 * r['utilization']:5.1f}% util (goal {100 * GOALS[name]:.0f}% on "
                  f"default)  {r['runs']} run(s)  {r['latency_ms']:8.3f} ms "
                  f"{r['energy_uj']:8.3f} uJ  estimate "
                  f"{'=' if r['estimate_cycles'] == r['cycles'] else '!='} RTL  LiteRT ref "
                  f"{r['bit_exact_vs_reference_kernels']}/{r['inputs']} bit-exact "
                  f"(builtin {r['reference_equals_builtin_kernels']}, XNNPACK "
                  f"{r['reference_equals_default_xnnpack']} outputs alike)  host: "
                  f"{', '.join(r['host_ops']) or 'none'}", flush=True)
    write_results("tflite", results, plot)


if __name__ == "__main__":
    main()
