"""Accelerator benchmark: simulation speed through the Python API against a pure C++ loop over
the same Verilated model (measured alternately in one run), peak MACs/cycle per precision
measured on the RTL against the lane count, energy per op against BrainTTA's figures, and area
(Yosys, generic gates, each config synthesized whole; cached per config and sources) with the
vector unit's growth through the three widths.

Writes bench/results/hw.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from hw.area import area
from hw.asm import assemble
from hw.build import build_core
from hw.config import load_accel_config
from hw.machine import get_machine
from hw.microbench import measure_peak
from hw.units import PRECISIONS

HERE = Path(__file__).resolve().parent
BRAINTTA_FJ = {"binary": 35, "ternary": 67, "int8": 405}
LOOP = """
        64 -> lsu.ldw
        nop
        nop
        lsu.res -> r1
loop:   r2 -> lsu.ldb, 5 -> vmac.x, 3 -> vmac.mac
        r1 -> alu.in1, 1 -> alu.sub
        alu.res -> r1, alu.res -> alu.in1, 0 -> alu.ne
        nop
        nop
        alu.res -> b0
        ?b0 @loop -> ctrl.jump
        0 -> ctrl.halt
"""


def python_rate(machine, program, iterations: int) -> float:
    machine.load_program(program)
    machine.write_dmem(64, iterations.to_bytes(4, "little"))
    machine.reset()
    start = time.perf_counter()
    cycles = machine.run(max_cycles=1 << 40).cycles
    return cycles / (time.perf_counter() - start)


def cpp_rate(exe: Path, program_file: Path, words: int, row_words: int, iterations: int) -> float:
    out = subprocess.run([str(exe), str(program_file), str(words), str(row_words),
                          str(iterations)], capture_output=True, text=True, check=True).stdout
    cycles, seconds = out.split()
    return int(cycles) / float(seconds)


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("tiny", "default", "wide"):
            config = load_accel_config(name)
            lib = build_core(config)
            exe = Path(tmp) / f"cpp_loop_{name}"
            subprocess.run(["g++", "-O2", "-o", str(exe), str(HERE / "cpp_loop.cpp"),
                            f"-L{lib.parent}", "-ltta", f"-Wl,-rpath,{lib.parent}"], check=True)
            machine = get_machine("rtl", config)
            program = assemble(LOOP, machine.encoding)
            program_file = Path(tmp) / f"{name}.bin"
            program_file.write_bytes(program.harness_words().tobytes())
            iterations = 400_000
            py, cpp = [], []
            for _ in range(5):  # alternate, so drift of the shared machine hits both alike
                py.append(python_rate(machine, program, iterations))
                cpp.append(cpp_rate(exe, program_file, machine.encoding.words,
                                    config.vector_width // 32, iterations))
            ratio = statistics.median(p / c for p, c in zip(py, cpp))
            peaks = {p: measure_peak(machine, p) for p in PRECISIONS}
            dot_peaks = {p: measure_peak(machine, p, dot=True) for p in PRECISIONS}
            results[name] = {
                "python_api_cycles_per_s": statistics.median(py),
                "cpp_loop_cycles_per_s": statistics.median(cpp),
                "python_over_cpp": ratio,
                "peak": {p: {"macs_per_cycle": r.macs_per_cycle, "lanes": r.peak_macs_per_cycle,
                             "fj_per_op": r.energy_per_op_fj,
                             "fj_per_op_over_braintta": r.energy_per_op_fj / BRAINTTA_FJ[p]}
                         for p, r in peaks.items()},
                "peak_dot_form": {p: {"macs_per_cycle": r.macs_per_cycle,
                                      "lanes": r.peak_macs_per_cycle}
                                  for p, r in dot_peaks.items()},
            }
            print(f"{name:8} Python API {statistics.median(py) / 1e6:5.2f} M cycles/s, C++ loop "
                  f"{statistics.median(cpp) / 1e6:5.2f} M cycles/s, ratio {ratio:.3f}")
            for p, r in peaks.items():
                print(f"         {p:<8} {r.macs_per_cycle:7.1f} MACs/cycle (lanes "
                      f"{r.peak_macs_per_cycle}), {r.energy_per_op_fj:6.1f} fJ/op = "
                      f"{r.energy_per_op_fj / BRAINTTA_FJ[p]:.3f} x BrainTTA; dot form "
                      f"{dot_peaks[p].macs_per_cycle:.1f} MACs/cycle")
            start = time.perf_counter()
            report = area(config)  # whole, hierarchically (hw/area.py); cached
            lanes = config.vector_width // 8  # int8 MAC lanes
            results[name]["area"] = {
                "units": {u: {"cells": a.cells, "gate_equivalents": a.gate_equivalents}
                          for u, a in report.units.items()},
                "total_gate_equivalents": report.total.gate_equivalents,
                "vmac_ge_per_int8_lane": report.units["vmac"].gate_equivalents / lanes,
                "total_ge_per_int8_lane": report.total.gate_equivalents / lanes,
                "memory_bits": report.memory_bits,
                "seconds": time.perf_counter() - start}  # 0 when it came from the cache
            print("         area (GE): " + ", ".join(
                f"{u} {a.gate_equivalents / 1e3:.1f}k" for u, a in report.units.items())
                + f", total {report.total.gate_equivalents / 1e3:.1f}k "
                f"({report.total.gate_equivalents / lanes:.0f} per int8 lane); memories "
                + ", ".join(f"{k} {b / 8192:.0f} KiB" for k, b in report.memory_bits.items())
                + f" ({results[name]['area']['seconds']:.0f} s)", flush=True)
    # The vector unit's growth with W, through the three configs' whole syntheses.
    w = np.array([load_accel_config(n).vector_width for n in ("tiny", "default", "wide")])
    ge = np.array([results[n]["area"]["units"]["vmac"]["gate_equivalents"]
                   for n in ("tiny", "default", "wide")])
    slope, icpt = np.polyfit(w, ge, 1)
    quad = np.polyfit(w, ge, 2)
    results["vmac_growth"] = {
        "widths": w.tolist(), "gate_equivalents": ge.tolist(),
        "ge_per_bit_of_w": float(slope), "intercept": float(icpt),
        "ge_per_int8_lane": float(slope * 8),
        "max_residual_of_line": float(np.max(np.abs(np.polyval([slope, icpt], w) - ge) / ge)),
        "quadratic_share_at_widest": float(quad[0] * w[-1] ** 2 / np.polyval(quad, w[-1]))}
    print("vector unit: " + ", ".join(f"W={x} {g / 1e3:.0f}k GE" for x, g in zip(w, ge))
          + f"; line {slope:.0f} GE per bit of W ({slope * 8:.0f} per int8 lane), largest "
          f"residual {results['vmac_growth']['max_residual_of_line']:.1%}")
    out = HERE / "results" / "hw.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
