"""Compiler benchmark: utilization of the vector unit on conv layers per precision, measured on
the RTL, and compile time per zoo network.

Utilization = useful multiply-accumulates / (cycles x the precision's peak MACs per cycle), with
the cycles counted by the RTL for the whole layer (parameter loading and loops included).
Prints the table; writes bench/results/compiler.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.codegen import compile_layers  # noqa: E402
from compiler.executor import get_backend  # noqa: E402
from compiler.intsem import Requant  # noqa: E402
from compiler.layer_ir import Conv2d, Output  # noqa: E402
from compiler.pipeline import compile_model  # noqa: E402
from hw.config import load_accel_config  # noqa: E402
from compiler.zoo import ZOO, build  # noqa: E402

PAIRS = {"int8": (8, 8), "ternary": (2, 2), "binary": (1, 1)}
SHAPES = [(32, 32, 16), (64, 64, 8), (128, 128, 8)]  # C in, C out, H = W; 3x3, padding 1


def conv(rng, name, c, o, hw, w_bits, a_bits) -> Conv2d:
    values = {8: np.arange(-127, 128), 2: [-1, 0, 1], 1: [-1, 1]}[w_bits]
    rq = Requant.from_scale(rng.uniform(1e-3, 1e-2, o), relu=True)
    return Conv2d(name, (c, hw, hw), (o, hw, hw), rng.choice(values, (o, c, 3, 3)).astype(np.int8),
                  rng.integers(-500, 500, o).astype(np.int32), (1, 1), (1, 1, 1, 1), (1, 1), 1,
                  w_bits, a_bits, 0.1, Output("int8", np.full(o, 0.1), requant=rq))


def utilization(config) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for precision, (w_bits, a_bits) in PAIRS.items():
        for c, o, hw in SHAPES:
            layer = conv(rng, f"c{c}_{o}", c, o, hw, w_bits, a_bits)
            compiled = compile_layers([layer], config)
            backend = get_backend("rtl", compiled)
            lo = -1 if a_bits < 8 else -128
            x = rng.integers(lo, 2 if a_bits < 8 else 128, layer.in_shape)
            if a_bits == 1:
                x = np.where(x >= 0, 1, -1)
            _, run = backend.run(layer.name, x)
            binding = compiled.layers[layer.name]
            peak = config.lanes_at(binding.mac_bits)
            u = binding.macs / (run.cycles * peak)
            key = f"{precision} {c}->{o} {hw}x{hw}"
            out[key] = {"cycles": run.cycles, "macs": binding.macs, "peak_macs_per_cycle": peak,
                        "utilization": u, "tiling": binding.tiling}
            print(f"  {key:<26} {run.cycles:>8} cycles  {binding.macs / run.cycles:8.1f} "
                  f"MACs/cycle of {peak:5}  utilization {100 * u:5.1f}%", flush=True)
    return out


def compile_times(config) -> dict:
    out = {}
    for entry in ZOO:
        cal = np.random.default_rng(0).standard_normal((8, *entry.input_shape)).astype(np.float32)
        times, net = [], None
        for _ in range(3):
            start = time.perf_counter()
            net = compile_model(build(entry), torch.from_numpy(cal[:1]), config, entry.quant, cal)
            times.append(time.perf_counter() - start)
        cycles = sum(b.cycles for b in net.program.layers.values())
        macs = sum(b.macs for b in net.program.layers.values())
        out[entry.name] = {"compile_s": statistics.median(times), "cycles": cycles, "macs": macs,
                           "instructions": len(net.program.program.words)}
        print(f"  {entry.name:<14} compile {statistics.median(times):5.2f} s  {cycles:>8} cycles  "
              f"{macs:>9} MACs  {len(net.program.program.words):>6} instructions", flush=True)
    return out


def main() -> None:
    results = {}
    for name in ("default", "wide"):
        config = load_accel_config(name)
        print(f"accelerator '{name}': conv 3x3 utilization on the RTL")
        results[name] = {"utilization": utilization(config)}
    config = load_accel_config("default")
    print("zoo on 'default': compile time (median of 3), expected cycles")
    results["default"]["zoo"] = compile_times(config)
    path = ROOT / "bench" / "results" / "compiler.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"figures in {path}")


if __name__ == "__main__":
    main()
