"""Networks nobody here wrote: torchvision's classification models (random weights, 10
classes; compiler/thirdparty.py) on the TTA, int8 and mixed (ternary inside, 8-bit at the ends),
at 3x32x32 and 3x64x64.

Per network, version and size: whether it compiles (else the named reason), instructions (of
the instruction memory), accelerator runs per inference and the placement report's reasons,
host ops, RTL cycles (= the estimator's), end-to-end utilization (MACs over cycles x int8 lanes),
energy, bit-exactness of every layer on the RTL against the integer reference on N inputs, the
architectural limit (MACs at the int8 peak against the off-chip bytes at the DMA's bandwidth:
late layers of small maps use each streamed weight once or a few times), and whether the
outputs vary with the input (a mixed network whose signal dies gives one output for
all). Writes bench/results/thirdparty.json and thirdparty.png.

  python bench/thirdparty_bench.py [--config default] [--sizes 32,64] [--versions int8,mixed]
                                   [--models ...] [--inputs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import write_results  # noqa: E402
from codesign.hwcost import network_cost  # noqa: E402
from compiler.errors import CompileError  # noqa: E402
from compiler.estimate import estimate  # noqa: E402
from compiler.pipeline import compile_model  # noqa: E402
from compiler.thirdparty import TORCHVISION, mixed_spec  # noqa: E402
from hw.config import load_accel_config  # noqa: E402


def exactness(net, n: int) -> tuple[int, int]:
    """(inputs on which every layer's RTL output equals the integer reference's, distinct
    outputs among them)."""
    xs = net.random_inputs(n, 11)
    exact, outputs = 0, set()
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        for x in xs:
            y, y_ref = rtl(x[None]), ref(x[None])
            exact += np.array_equal(y, y_ref) and all(
                np.array_equal(rtl.int_outputs[k], ref.int_outputs[k]) for k in ref.int_outputs)
            outputs.add(y.tobytes())
    return exact, len(outputs)


def measure(entry, config, size: int, version: str, n: int) -> dict:
    torch.manual_seed(0)
    model = entry.factory().eval()
    cal = torch.randn(8, 3, size, size)
    spec = mixed_spec(model) if version == "mixed" else None
    start = time.perf_counter()
    net = compile_model(model, cal[:1], config, spec, cal.numpy())
    compile_s = time.perf_counter() - start
    cost = network_cost(net, "both")
    macs = sum(b.macs for b in net.program.layers.values())
    exact, distinct = exactness(net, n)
    # the architectural limits: MACs at the int8 peak, and the off-chip bytes (streamed
    # weights, runs' inputs and results) at the DMA's bandwidth
    counts = estimate(net.program).values()
    offchip = sum(c.get("offchip_read_bits", 0) + c.get("offchip_write_bits", 0)
                  for c in counts)
    dma_bound = offchip // config.offchip.bits_per_cycle
    return {"instructions": len(net.program.program.words), "imem": config.imem_depth,
            "runs": len(net.program.segments),
            "why_runs": sorted({s.why for s in net.program.segments if s.why}),
            "host_ops": list(cost.host_ops), "cycles": cost.cycles,
            "estimate_cycles": cost.estimate_cycles, "macs": macs,
            "utilization": round(macs / (cost.cycles * config.lanes), 4),
            "energy_uj": round(cost.energy_j * 1e6, 3), "inputs": n, "bit_exact": exact,
            "mac_bound_cycles": -(-macs // config.lanes), "offchip_bound_cycles": dma_bound,
            "utilization_limit": round(macs / config.lanes / max(dma_bound, macs / config.lanes),
                                       4),
            "distinct_outputs": distinct, "compile_s": round(compile_s, 1)}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in results if isinstance(results[k], dict) and "int8_32" in results[k]]
    keys = sorted({k for n in names for k in results[n]})
    fig, ax = plt.subplots(figsize=(12, 4))
    width = 0.8 / max(1, len(keys))
    for i, k in enumerate(keys):
        u = [results[n].get(k, {}).get("utilization", 0) for n in names]
        ax.bar(np.arange(len(names)) + width * (i - len(keys) / 2), u, width, label=k)
    ax.axhline(0.3, color="k", lw=0.8, ls="--", label="goal: every network (int8, 32)")
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set_title("end-to-end utilization of the int8 peak (0: does not compile)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="default")
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--versions", default="int8,mixed")
    ap.add_argument("--models", default=",".join(e.name for e in TORCHVISION))
    ap.add_argument("--inputs", type=int, default=3, help="inputs checked on the RTL")
    ap.add_argument("--update", action="store_true",
                    help="measure the given models, sizes and versions again into the existing "
                         "results (the others kept as measured)")
    args = ap.parse_args()
    config = load_accel_config(args.config)
    entries = {e.name: e for e in TORCHVISION}
    results: dict = {"config": args.config}
    if args.update:
        results = json.loads((ROOT / "bench/results/thirdparty.json").read_text())
        results.pop("measured", None)
    for name in args.models.split(","):
        results.setdefault(name, {})
        for version in args.versions.split(","):
            for size in map(int, args.sizes.split(",")):
                key = f"{version}_{size}"
                try:
                    r = results[name][key] = measure(entries[name], config, size, version,
                                                     args.inputs)
                except CompileError as exc:
                    results[name][key] = {"error": str(exc)}
                    print(f"{name:<19} {key:<9} does not compile: {exc}", flush=True)
                    continue
                print(f"{name:<19} {key:<9} {r['instructions']:>6} instr  {r['runs']:>3} runs "
                      f"{r['cycles']:>9} cycles {100 * r['utilization']:5.1f}% util "
                      f"(limit {100 * r['utilization_limit']:5.1f}%: off-chip "
                      f"{r['offchip_bound_cycles']} cycles) {r['energy_uj']:8.2f} uJ  estimate "
                      f"{'=' if r['estimate_cycles'] == r['cycles'] else '!='} RTL  "
                      f"{r['bit_exact']}/{r['inputs']} bit-exact, {r['distinct_outputs']} "
                      f"distinct outputs  host: {len(r['host_ops'])} ops "
                      f"({', '.join(sorted(set(o.split('(')[0] for o in r['host_ops'])))[:80]})",
                      flush=True)
    utils = [results[n]["int8_32"]["utilization"] for n in results
             if isinstance(results[n], dict) and "utilization" in results[n].get("int8_32", {})]
    if utils:
        results["int8_32_utilization"] = {"min": min(utils), "median": statistics.median(utils)}
        print(f"int8 3x32x32: utilization min {100 * min(utils):.1f}%, median "
              f"{100 * statistics.median(utils):.1f}% (goals 30%, 50%)")
    write_results("thirdparty", results, plot)


if __name__ == "__main__":
    main()
