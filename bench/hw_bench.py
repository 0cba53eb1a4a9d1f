"""Accelerator benchmark: simulation speed through the Python API against a pure C++ loop over
the same Verilated model (measured alternately in one run), peak MACs/cycle per precision
measured on the RTL against the lane count, energy per op against BrainTTA's figures, and area
(Yosys, generic gates; cached per config; only tiny unless cached or CODESIGN_BENCH_AREA=1,
since the wide configs take hours to synthesize).

Writes bench/results/hw.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from hw.area import FIT_WIDTHS, area, area_cached, vmac_widths
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
            if name != "tiny" and not os.environ.get("CODESIGN_BENCH_AREA") and \
                    not area_cached(config):
                print("         area: not cached; CODESIGN_BENCH_AREA=1 synthesizes it "
                      "(W > 256: the vector unit on the line through syntheses at W = 64, 128, "
                      "256, about an hour here, once)")
                continue
            report = area(config)
            results[name]["area"] = {
                "units": {u: {"cells": a.cells, "gate_equivalents": a.gate_equivalents}
                          for u, a in report.units.items()},
                "total_gate_equivalents": report.total.gate_equivalents,
                "memory_bits": report.memory_bits,
                "extrapolated": list(report.extrapolated),
                "fit_widths": list(FIT_WIDTHS) if report.extrapolated else []}
            print("         area (GE): " + ", ".join(
                f"{u} {a.gate_equivalents / 1e3:.1f}k" for u, a in report.units.items())
                + f", total {report.total.gate_equivalents / 1e3:.1f}k; memories "
                + ", ".join(f"{k} {b / 8192:.0f} KiB" for k, b in report.memory_bits.items())
                + "".join(f"; {u} extrapolated from W = {', '.join(map(str, FIT_WIDTHS))}"
                          for u in report.extrapolated))
    if "area" in results.get("default", {}):  # the vector unit's growth with W
        points = vmac_widths(load_accel_config("default"))
        w = np.array(list(points))
        ge = np.array([a.gate_equivalents for a in points.values()])
        slope, icpt = np.polyfit(w, ge, 1)
        quad = np.polyfit(w, ge, 2)[0]
        results["vmac_growth"] = {
            "widths": w.tolist(), "gate_equivalents": ge.tolist(),
            "ge_per_bit_of_w": float(slope), "intercept": float(icpt),
            "ge_per_int8_lane": float(slope * 8),
            "max_residual_of_line": float(np.max(np.abs(np.polyval([slope, icpt], w) - ge) / ge)),
            "quadratic_share_at_2048": float(quad * 2048 ** 2 / np.polyval(
                np.polyfit(w, ge, 2), 2048))}
        print("vector unit: " + ", ".join(f"W={x} {g / 1e3:.0f}k GE" for x, g in zip(w, ge))
              + f"; line {slope:.0f} GE per bit of W ({slope * 8:.0f} per int8 lane), largest "
              f"residual {results['vmac_growth']['max_residual_of_line']:.1%}")
    out = HERE / "results" / "hw.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
