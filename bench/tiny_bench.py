"""MLPerf Tiny on the TTA: the four reference models (bench/tiny_models.py), int8 and one mixed
version each, compiled for tiny, default and wide and run on the RTL.

Per network and config: RTL cycles (checked equal to the estimator's), utilization against the
peak of each layer's precision (ideal cycles = sum of MACs / peak lanes of the layer's
precision, over the measured cycles), latency at the clock, energy (the energy model), host ops,
and a bit-exactness check of every layer's integer output against the numpy reference on a
random input; the published MLPerf Tiny v1.1 figures beside them as context (measured silicon,
ours is a model). Writes bench/results/tiny.json and tiny_utilization.png (per layer, default).

  python bench/tiny_bench.py [--configs tiny,default,wide] [--models resnet8,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from codesign.hwcost import network_cost  # noqa: E402
from compiler.errors import CompileError  # noqa: E402
from compiler.pipeline import compile_model  # noqa: E402
from hw.config import load_accel_config  # noqa: E402
from tiny_models import TINY, build  # noqa: E402

# Published MLPerf Tiny v1.1 closed-division results (latency ms, energy uJ), for context.
PUBLISHED = {
    "resnet8": {"Syntiant NDP9120": (16.0, 101.8), "STM32L4R5 (Cortex-M4)": (214.0, 7019.0),
                "microTVM + CMSIS-NN (same MCU)": (390.0, None)},
    "ds_cnn": {"Syntiant NDP9120": (4.37, 31.5)},
    "mobilenet_v1": {"Syntiant NDP9120": (12.7, 71.7)},
    "autoencoder": {},
}


def measure(entry, config, spec) -> dict:
    model = build(entry)
    rng = np.random.default_rng(0)
    cal = rng.standard_normal((8, *model.input_shape)).astype(np.float32)
    start = time.perf_counter()
    net = compile_model(model, torch.from_numpy(cal[:1]), config, spec, cal)
    compile_s = time.perf_counter() - start
    x = rng.standard_normal((1, *model.input_shape)).astype(np.float32)
    cost = network_cost(net, "both", x)
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        rtl(x), ref(x)
        exact = all(np.array_equal(rtl.int_outputs[k], v) for k, v in ref.int_outputs.items())
    ideal, layers = 0.0, []
    for layer in cost.layers:
        b = net.program.layers[layer.name]
        peak = config.lanes_at(b.mac_bits) if b.mac_bits else 0
        ideal += b.macs / peak if peak else 0.0
        layers.append({"name": layer.name, "kind": net.program.layers[layer.name].layer.kind,
                       "mac_bits": b.mac_bits, "macs": b.macs, "cycles": layer.cycles,
                       "utilization": round(layer.utilization, 4),
                       "handover_cycles": b.tiling.get("handover_cycles", 0),
                       "energy_nj": round(layer.energy_j * 1e9, 3)})
    macs = sum(b.macs for b in net.program.layers.values())
    hand = sum(b.tiling.get("handover_cycles", 0) for b in net.program.layers.values())
    return {"cycles": cost.cycles, "estimate_cycles": cost.estimate_cycles,
            "utilization": round(ideal / cost.cycles, 4),
            "utilization_without_handover": round(ideal / (cost.cycles - hand), 4),
            "handover_cycles": hand, "runs": len(net.program.segments),
            "utilization_int8_peak": round(macs / (cost.cycles * config.lanes), 4),
            "macs": macs, "latency_ms": round(cost.latency_s * 1e3, 4),
            "energy_uj": round(cost.energy_j * 1e6, 4), "host_ops": list(cost.host_ops),
            "bit_exact": exact, "compile_s": round(compile_s, 2), "layers": layers}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in results if "default" in results[m]
              and "int8" in results[m]["default"] and "layers" in results[m]["default"]["int8"]]
    fig, axes = plt.subplots(len(models), 1, figsize=(12, 2.6 * len(models)))
    for ax, name in zip(np.atleast_1d(axes), models):
        for version, color in (("int8", "tab:blue"), ("mixed", "tab:orange")):
            r = results[name]["default"].get(version, {})
            if "layers" not in r:
                continue
            u = [layer["utilization"] for layer in r["layers"] if layer["mac_bits"]]
            ax.plot(range(len(u)), u, "o-", color=color,
                    label=f"{version}: {100 * r['utilization']:.1f}% end to end")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("utilization")
        ax.set_title(f"{name} on 'default' (per MAC layer, against its precision's peak)")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="tiny,default,wide")
    ap.add_argument("--models", default=",".join(e.name for e in TINY))
    args = ap.parse_args()
    results: dict = {}
    for entry in TINY:
        if entry.name not in args.models.split(","):
            continue
        results[entry.name] = {"published_ms_uj": PUBLISHED[entry.name],
                               "published_macs": entry.macs}
        for name in args.configs.split(","):
            config = load_accel_config(name)
            per = results[entry.name][name] = {}
            for version, spec in (("int8", None), ("mixed", entry.mixed)):
                try:
                    r = per[version] = measure(entry, config, spec)
                except CompileError as exc:
                    per[version] = {"error": str(exc)}
                    print(f"{entry.name:<13} {name:<8} {version:<6} does not compile: {exc}",
                          flush=True)
                    continue
                print(f"{entry.name:<13} {name:<8} {version:<6} {r['cycles']:>9} cycles "
                      f"{100 * r['utilization']:5.1f}% util "
                      f"({100 * r['utilization_without_handover']:5.1f}% without the "
                      f"{r['handover_cycles']} hand-over cycles, {r['runs']} run(s))  "
                      f"{r['latency_ms']:8.3f} ms "
                      f"{r['energy_uj']:8.2f} uJ  bit-exact {r['bit_exact']}  "
                      f"estimate {'=' if r['estimate_cycles'] == r['cycles'] else '!='} RTL  "
                      f"host ops: {', '.join(r['host_ops']) or 'none'}", flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tiny.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "tiny_utilization.png")
    print("\nper layer on default, int8 (utilization against the layer's precision peak):")
    for model, per in results.items():
        r = per.get("default", {}).get("int8", {})
        for layer in r.get("layers", []):
            print(f"  {model:<13} {layer['name']:<22} {layer['kind']:<17} {layer['cycles']:>7} "
                  f"{100 * layer['utilization']:5.1f}%")
    print(f"wrote {out / 'tiny.json'} and {out / 'tiny_utilization.png'}")


if __name__ == "__main__":
    main()
