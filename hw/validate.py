"""`codesign validate-accel`: build, lint, test and measure one accelerator config."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hw.area import AreaReport, area, area_cached
from hw.build import build_core, lint
from hw.config import AccelConfig
from hw.difftest import diff_random_programs
from hw.machine import get_machine
from hw.microbench import PeakResult, measure_peak
from hw.units import PRECISIONS


@dataclass
class Validation:
    config: AccelConfig
    build_s: float = 0.0
    lint: list[str] = field(default_factory=list)
    unit_benches: dict[str, tuple[int, int]] = field(default_factory=dict)  # unit -> (tests, fails)
    random_programs: int = 0
    mismatches: list = field(default_factory=list)
    peaks: dict[str, PeakResult] = field(default_factory=dict)
    area: AreaReport | None = None

    @property
    def ok(self) -> bool:
        return (not self.lint and not self.mismatches
                and all(f == 0 for _, f in self.unit_benches.values())
                and all(p.macs_per_cycle == p.peak_macs_per_cycle for p in self.peaks.values()))


def validate(config: AccelConfig, programs: int = 200, with_area: bool = False,
             progress: Callable[[str], None] = print) -> Validation:
    from hw.tb.runner import BENCHES, run_unit_bench

    v = Validation(config)
    start = time.time()
    build_core(config)
    v.build_s = time.time() - start
    progress(f"build: {v.build_s:.1f} s (cached after the first time)")
    v.lint = lint(config)
    progress(f"lint (verilator -Wall, waivers in hw/rtl/lint_waivers.vlt): "
             f"{'clean' if not v.lint else f'{len(v.lint)} warnings'}")
    for unit in BENCHES:
        with tempfile.TemporaryDirectory() as tmp:
            v.unit_benches[unit] = run_unit_bench(unit, config, Path(tmp))
        tests, fails = v.unit_benches[unit]
        progress(f"cocotb bench of {unit}: {tests - fails}/{tests} passed")
    v.mismatches = diff_random_programs(config, programs)
    v.random_programs = programs
    progress(f"random programs, RTL vs golden model: {programs - len(v.mismatches)}/{programs} "
             f"identical")
    machine = get_machine("rtl", config)
    for precision in PRECISIONS:
        v.peaks[precision] = measure_peak(machine, precision)
        v.peaks[f"{precision}-dot"] = measure_peak(machine, precision, dot=True)
    if with_area or area_cached(config):
        progress("area: Yosys synthesis to generic gates (cached; the first run on a config with "
                 "W > 128 takes about an hour: the vector unit is fitted over three widths)")
        v.area = area(config)
    return v


def report(v: Validation) -> str:
    c = v.config
    rows = [f"accelerator '{c.name}': {c.buses} buses, W = {c.vector_width}, "
            f"{c.clock_mhz:g} MHz",
            f"{'precision':<11} {'MACs/cycle':>10} {'peak':>6} {'GOPS':>7} {'fJ/op':>7}"]
    for p, r in v.peaks.items():
        gops = 2 * r.macs_per_cycle * c.clock_mhz / 1e3
        rows.append(f"{p:<11} {r.macs_per_cycle:>10.1f} {r.peak_macs_per_cycle:>6} {gops:>7.1f} "
                    f"{r.energy_per_op_fj:>7.1f}")
    rows.append("energy: a model calibrated to BrainTTA's published figures, not a measurement")
    if not v.area:
        rows.append("area: not computed (--area synthesizes it; about an hour for W > 128)")
    else:
        rows.append(f"{'area':<9} {'cells':>10} {'GE':>10}  "
                    f"(gate equivalents: CMOS transistors / 4)")
        for unit, a in [*v.area.units.items(), ("total", v.area.total)]:
            rows.append(f"{unit:<9} {a.cells:>10} {a.gate_equivalents:>10.0f}")
        rows.append("memories (not in the gate counts): " + ", ".join(
            f"{k} {b / 8192:.0f} KiB" for k, b in v.area.memory_bits.items()))
    rows.append("result: " + ("OK" if v.ok else "FAILED"))
    return "\n".join(rows)
