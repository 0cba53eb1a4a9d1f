"""Simulation speed: simulated cycles per second of the RTL core through the Python API, the
golden model on the same program, and the whole stack (TVM host + RTL) on the demo network.

Prints the figures and ratios measured side by side in this run; writes
bench/results/sim_speed.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from codesign.data import load_digits
from codesign.evaluate import compile_quantnet
from codesign.models import Candidate, build_model
from codesign.train import TrainConfig, train
from hw.asm import assemble
from hw.config import load_accel_config
from hw.machine import get_machine

# A loop that keeps every unit busy: load, multiply-accumulate, ALU count-down, guarded jump.
# The iteration count is read from data-memory word 64.
LOOP = """
        64 -> lsu.ldw
        nop
        lsu.res -> r1
loop:   r2 -> lsu.ldb, 5 -> vmac.x, 3 -> vmac.mac
        r1 -> alu.in1, 1 -> alu.sub, lsu.res -> r3
        alu.res -> r1, alu.res -> alu.in1, 0 -> alu.ne
        alu.res -> b0
        ?b0 @loop -> ctrl.jump
        0 -> ctrl.halt
"""


def cycles_per_second(engine: str, config, iterations: int) -> tuple[float, int]:
    m = get_machine(engine, config)
    m.load_program(assemble(LOOP, m.encoding))
    m.write_dmem(64, iterations.to_bytes(4, "little"))
    m.reset()
    start = time.perf_counter()
    cycles = m.run(max_cycles=100 * iterations).cycles
    return cycles / (time.perf_counter() - start), cycles


def main() -> None:
    results = {}
    for name in ("tiny", "default"):
        config = load_accel_config(name)
        get_machine("rtl", config)  # build outside the timing
        rtl, cycles = cycles_per_second("rtl", config, 100_000)
        golden, _ = cycles_per_second("golden", config, 2_000)
        results[name] = {"rtl_cycles_per_s": rtl, "golden_cycles_per_s": golden,
                         "rtl_over_golden": rtl / golden, "loop_cycles": cycles}
        print(f"{name:8} RTL {rtl / 1e6:6.2f} M cycles/s, golden model {golden / 1e3:6.1f} k "
              f"cycles/s, ratio {rtl / golden:6.0f}x")

    data = load_digits()
    model = train(build_model(Candidate.plain((8, 16), (1, 2)), data.input_shape, 10), data,
                  TrainConfig(epochs=1))
    net = compile_quantnet(model, load_accel_config("default"))
    runner = net.runner("rtl")
    runner(data.x_test[:1])
    n = 200
    start = time.perf_counter()
    for i in range(n):
        runner(data.x_test[i:i + 1])
    wall = time.perf_counter() - start
    stack = runner.cycles * n / wall
    results["demo_network"] = {"cycles_per_inference": runner.cycles,
                               "inferences_per_s": n / wall, "whole_stack_cycles_per_s": stack,
                               "whole_stack_over_core":
                                   stack / results["default"]["rtl_cycles_per_s"]}
    print(f"demo net {runner.cycles} cycles/inference, {n / wall:.0f} inferences/s, whole stack "
          f"{stack / 1e6:.2f} M cycles/s = {results['demo_network']['whole_stack_over_core']:.2f} "
          f"of the bare core")
    out = Path(__file__).resolve().parent / "results" / "sim_speed.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
