"""Evaluation service benchmark on a ResNet-8-size mixed-precision network (28x28 input):
end-to-end RTL evaluation (compile + one inference on the Verilated core), the analytic
estimator, and a cache hit, measured side by side; simulated cycles per second.

Prints the figures and ratios; writes bench/results/eval.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codesign.evalcache import EvalCache, cache_key  # noqa: E402
from codesign.hwcost import network_cost  # noqa: E402
from codesign.metrics import Metrics  # noqa: E402
from compiler.estimate import estimate, event_table  # noqa: E402
from compiler.pipeline import compile_model  # noqa: E402
from compiler.zoo import ZOO, build  # noqa: E402
from hw.config import load_accel_config  # noqa: E402
from hw.machine import get_machine  # noqa: E402


def main() -> None:
    entry = next(e for e in ZOO if e.name == "mixed_resnet8")
    config = load_accel_config("default")
    get_machine("rtl", config)  # a warm build cache, as the goal states
    cal = np.random.default_rng(0).standard_normal((8, *entry.input_shape)).astype(np.float32)
    model = build(entry)
    compile_s, rtl_s, est_s, hit_s, sim_rates, decode_s = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        cache = EvalCache(Path(tmp) / "eval.sqlite")
        for i in range(3):
            start = time.perf_counter()
            net = compile_model(model, torch.from_numpy(cal[:1]), config, entry.quant, cal)
            compiled = time.perf_counter()
            cost = network_cost(net, "rtl", cal[:1])
            done = time.perf_counter()
            compile_s.append(compiled - start)
            rtl_s.append(done - start)
            with net.runner("rtl") as runner:  # the simulation alone
                t = time.perf_counter()
                runner(cal[:1])
                sim_rates.append(runner.cycles / (time.perf_counter() - t))
            t = time.perf_counter()  # events decoded at compile time; the estimate itself
            estimate(net.program)
            est_s.append(time.perf_counter() - t)
            net.program._event_table = None
            t = time.perf_counter()
            event_table(net.program)
            decode_s.append(time.perf_counter() - t)
            key = cache_key(model, entry.quant, cal, config.to_dict(), "rtl")
            cache.put(key, cost.as_dict())
            t = time.perf_counter()  # a repeated evaluation: key (model hash) + lookup
            hit = Metrics.from_dict(cache.get(cache_key(model, entry.quant, cal,
                                                            config.to_dict(), "rtl")))
            hit_s.append(time.perf_counter() - t)
            assert hit == cost
        cache.close()
    result = {
        "network": entry.name, "input": list(entry.input_shape), "accelerator": config.name,
        "cycles": cost.cycles, "energy_j": cost.energy_j,
        "rtl_evaluation_s": statistics.median(rtl_s), "compile_s": statistics.median(compile_s),
        "estimate_s": statistics.median(est_s), "cache_hit_s": statistics.median(hit_s),
        "decode_at_compile_s": statistics.median(decode_s),
        "sim_cycles_per_s": statistics.median(sim_rates),
        "rtl_over_estimate": statistics.median(r / e for r, e in zip(rtl_s, est_s)),
        "rtl_over_cache_hit": statistics.median(r / h for r, h in zip(rtl_s, hit_s)),
    }
    print(f"{entry.name} on '{config.name}': {cost.cycles} cycles, "
          f"{cost.energy_j * 1e9:.1f} nJ (model)")
    print(f"  RTL evaluation (compile + inference) {result['rtl_evaluation_s']:.2f} s "
          f"(compile {result['compile_s']:.2f} s; goal <= 5 s)")
    print(f"  estimator {1e3 * result['estimate_s']:.2f} ms "
          f"({result['rtl_over_estimate']:.0f}x faster than RTL evaluation; the program's "
          f"events decoded at compile time in {1e3 * result['decode_at_compile_s']:.1f} ms)")
    print(f"  cache hit {1e3 * result['cache_hit_s']:.2f} ms "
          f"({result['rtl_over_cache_hit']:.0f}x faster)")
    print(f"  simulation {result['sim_cycles_per_s'] / 1e6:.2f} M cycles/s (inference on the RTL)")
    path = ROOT / "bench" / "results" / "eval.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"figures in {path}")


if __name__ == "__main__":
    main()
