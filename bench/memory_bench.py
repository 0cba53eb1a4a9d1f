"""Memory-system benchmark: networks whose weights do not fit the data memory, on `default`.

The layers that do not fit keep their weights in the off-chip memory and load them with the DMA
unit, weight segments double-buffered so that a segment loads while the previous one computes. Per
network, compiled twice (loads overlapped with compute, and one after the other), run on the
RTL: cycles (checked equal to the estimator's), DMA wait stalls, the share of the transfer time
hidden behind compute (1 - stalls overlapped / stalls serial), the off-chip share of the energy,
bit-exactness against the integer reference. Writes bench/results/memory.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.codegen import compile_layers  # noqa: E402
from compiler.estimate import estimate  # noqa: E402
from compiler.executor import get_backend  # noqa: E402
from compiler.intsem import Requant  # noqa: E402
from compiler.layer_ir import Conv2d, Dense, Output  # noqa: E402
from hw.config import load_accel_config  # noqa: E402
from hw.energy import energy_of  # noqa: E402


def _out(rng, o, kind="int8"):
    if kind == "int32":
        return Output("int32", np.full(o, 0.1))
    return Output("int8", np.full(o, 0.1),
                  requant=Requant.from_scale(rng.uniform(1e-3, 1e-2, o), relu=True))


def dense(rng, name, k, o, kind="int8"):
    return Dense(name, (k,), o, rng.integers(-127, 128, (o, k)).astype(np.int8),
                 rng.integers(-900, 900, o).astype(np.int32), 8, 8, 0.1, _out(rng, o, kind))


def conv(rng, name, c, o, hw):
    return Conv2d(name, (c, hw, hw), (o, hw, hw), rng.integers(-127, 128, (o, c, 3, 3)).astype(
        np.int8), rng.integers(-500, 500, o).astype(np.int32), (1, 1), (1, 1, 1, 1), (1, 1), 1,
        8, 8, 0.1, _out(rng, o))


def networks(rng):
    return {
        "mlp 784-300-100-10": [dense(rng, "fc1", 784, 300), dense(rng, "fc2", 300, 100),
                               dense(rng, "fc3", 100, 10, "int32")],
        "mlp 2048-1024-1024-10": [dense(rng, "fc1", 2048, 1024), dense(rng, "fc2", 1024, 1024),
                                  dense(rng, "fc3", 1024, 10, "int32")],
        "conv 3x3 64->512 @16x16": [conv(rng, "conv", 64, 512, 16)],
        "conv 3x3 256->256, 256->128 @8x8": [conv(rng, "c1", 256, 256, 8),
                                             conv(rng, "c2", 256, 128, 8)],
    }


def run(layers, config, overlap, rng):
    compiled = compile_layers(layers, config, overlap=overlap)
    rtl, ref = get_backend("rtl", compiled), get_backend("reference", compiled)
    est = estimate(compiled)
    totals, exact = {}, True
    for layer in layers:
        x = rng.integers(-128, 128, layer.in_grid).astype(np.int8)
        y, run_ = rtl.run(layer.name, x)
        exact &= bool(np.array_equal(y, ref.run(layer.name, x)[0]))
        exact &= run_.counters == est[layer.name]
        for k, v in run_.counters.items():
            totals[k] = totals.get(k, 0) + v
    e = energy_of(totals, config.energy, config.vector_width)
    weights = sum(len(d) for _, d in compiled.offchip)
    total = sum(layer.weight.size * layer.w_bits // 8 for layer in layers)
    return {"weight_bytes": total, "cycles": totals["cycles"],
            "dma_stall_cycles": totals["dma_stall_cycles"],
            "offchip_read_bytes": totals["offchip_read_bits"] // 8,
            "offchip_weight_bytes": weights,
            "energy_uj": e.total_pj * 1e-6, "offchip_energy_share": e.offchip_pj / e.total_pj,
            "bit_exact_and_estimate_equal": exact,
            "segments": {layer.name: compiled.layers[layer.name].tiling.get("weight_segments", 0)
                         for layer in layers}}


def main() -> None:
    config = load_accel_config("default")
    results = {"accelerator": config.name, "dmem_bytes": config.dmem_bytes,
               "offchip": vars(config.offchip) if hasattr(config.offchip, "__dict__") else
               dict(config.offchip.__dict__), "networks": {}}
    for name, layers in networks(np.random.default_rng(0)).items():
        start = time.perf_counter()
        over = run(layers, config, True, np.random.default_rng(1))
        serial = run(layers, config, False, np.random.default_rng(1))
        hidden = 1 - over["dma_stall_cycles"] / serial["dma_stall_cycles"] \
            if serial["dma_stall_cycles"] else 0.0
        results["networks"][name] = {"overlapped": over, "serial": serial,
                                     "transfer_hidden": round(hidden, 4),
                                     "speedup": round(serial["cycles"] / over["cycles"], 4)}
        exact = over["bit_exact_and_estimate_equal"] and serial["bit_exact_and_estimate_equal"]
        print(f"{name:<25} weights {over['weight_bytes'] / 1024:5.0f} KiB "
              f"({over['weight_bytes'] / config.dmem_bytes:4.1f}x the memory, "
              f"{over['offchip_weight_bytes'] / 1024:4.0f} KiB streamed)  cycles "
              f"{over['cycles']:>8} overlapped / {serial['cycles']:>8} serial  "
              f"({100 * hidden:5.1f}% of the transfer time hidden)  off-chip "
              f"{100 * over['offchip_energy_share']:4.1f}% of {over['energy_uj']:.2f} uJ  "
              f"exact {exact}"
              f"  [{time.perf_counter() - start:.0f} s]", flush=True)
    out = ROOT / "bench" / "results" / "memory.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
