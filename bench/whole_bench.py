"""Whole-network runs against layer-by-layer runs: what the host used to hide.

Before, the host ran each layer alone and moved activations between layers (decode, re-encode,
zero-pad) in zero cycles; now one run goes from input to output and the layers' own code hands
each output over (LSU copies, or a consumer reading its producer's buffer in place). Per network
(the zoo and the MLPerf Tiny models, int8 and mixed) on `default`: cycles and energy of both
compilations of the same layers (estimator, exact), the hand-over's cycles, the runs per
inference, and one inference of the whole-network program on the RTL (bit-exact against the
reference, cycles equal to the estimate). Writes bench/results/whole.json and whole.png.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import write_results  # noqa: E402
from tiny_models import TINY, build as build_tiny  # noqa: E402

from compiler.codegen import compile_layers  # noqa: E402
from compiler.estimate import estimate  # noqa: E402
from compiler.pipeline import compile_model  # noqa: E402
from compiler.zoo import ZOO, build  # noqa: E402
from hw.config import load_accel_config  # noqa: E402
from hw.energy import energy_of  # noqa: E402


def totals(compiled) -> dict[str, int]:
    out: dict[str, int] = {}
    for counters in estimate(compiled).values():
        for k, v in counters.items():
            out[k] = out.get(k, 0) + v
    return out


def measure(model, shape, spec, config) -> dict:
    rng = np.random.default_rng(0)
    cal = rng.standard_normal((8, *shape)).astype(np.float32)
    net = compile_model(model, torch.from_numpy(cal[:1]), config, spec, cal)
    stems = frozenset(n for n, b in net.program.layers.items() if b.im2col is not None)
    alone = compile_layers(net.layers, config, host_inputs=stems)
    before, after = totals(alone), totals(net.program)
    x = rng.standard_normal((1, *shape)).astype(np.float32)
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        exact = bool(np.array_equal(rtl(x), ref(x))) and all(
            np.array_equal(rtl.int_outputs[k], v) for k, v in ref.int_outputs.items())
        rtl_cycles = rtl.cycles
    hand = sum(b.tiling.get("handover_cycles", 0) for b in net.program.layers.values())
    e_before = energy_of(before, config.energy, config.vector_width).total_pj
    e_after = energy_of(after, config.energy, config.vector_width).total_pj
    return {"layers": len(net.layers), "runs": len(net.program.segments),
            "run_starts": [f"{s.layers[0]}: {s.why}" for s in net.program.segments],
            "cycles_layer_by_layer": before["cycles"], "cycles_whole": after["cycles"],
            "handover_cycles": hand, "hidden_share": round(hand / after["cycles"], 4),
            "ratio": round(after["cycles"] / before["cycles"], 4),
            "energy_uj_layer_by_layer": round(e_before * 1e-6, 4),
            "energy_uj_whole": round(e_after * 1e-6, 4),
            "rtl_cycles": rtl_cycles, "rtl_equals_estimate": rtl_cycles == after["cycles"],
            "bit_exact": exact}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(results["networks"])
    r = [results["networks"][n] for n in names]
    fig, ax = plt.subplots(figsize=(10, 4))
    xs = np.arange(len(names))
    ax.bar(xs, [v["cycles_layer_by_layer"] for v in r], 0.4, label="layer by layer (host free)")
    ax.bar(xs + 0.4, [v["cycles_whole"] for v in r], 0.4, label="whole network (hand-over on "
           "the accelerator)")
    ax.set_xticks(xs + 0.2, names, rotation=45, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("cycles per inference")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    config = load_accel_config("default")
    results = {"accelerator": config.name, "networks": {}}
    cases = [(e.name, build(e), e.input_shape, e.quant) for e in ZOO]
    for entry in TINY:
        model = build_tiny(entry)
        cases += [(f"{entry.name}-int8", model, model.input_shape, None),
                  (f"{entry.name}-mixed", model, model.input_shape, entry.mixed)]
    for name, model, shape, spec in cases:
        start = time.perf_counter()
        r = results["networks"][name] = measure(model, shape, spec, config)
        print(f"{name:<22} {r['cycles_layer_by_layer']:>9} -> {r['cycles_whole']:>9} cycles "
              f"(x{r['ratio']:.2f}; hand-over {r['handover_cycles']:>7} = "
              f"{100 * r['hidden_share']:4.1f}%)  runs {r['runs']}/{r['layers']} layers  "
              f"energy {r['energy_uj_layer_by_layer']:.2f} -> {r['energy_uj_whole']:.2f} uJ  "
              f"RTL {'=' if r['rtl_equals_estimate'] else '!='} estimate  "
              f"{'bit-exact' if r['bit_exact'] else 'MISMATCH'}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    nets = results["networks"].values()
    results["summary"] = {
        "median_ratio": float(np.median([r["ratio"] for r in nets])),
        "median_hidden_share": float(np.median([r["hidden_share"] for r in nets])),
        "single_run_networks": sum(r["runs"] == 1 for r in nets),
        "networks": len(results["networks"]),
        "all_bit_exact": all(r["bit_exact"] for r in nets),
        "all_rtl_equal_estimate": all(r["rtl_equals_estimate"] for r in nets)}
    print(results["summary"])
    write_results("whole", results, plot)


if __name__ == "__main__":
    main()
