"""Microbenchmarks on an accelerator engine: peak vector-MAC throughput and energy per op.

The peak program issues one vector-MAC trigger per cycle (the activation operand stays latched),
so measured lane MACs per cycle should equal the precision's lane count, in the broadcast and
in the dot-product form alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.asm import assemble
from hw.energy import energy_of
from hw.machine import Machine
from hw.units import DOT_PRECISIONS, PRECISIONS


@dataclass(frozen=True)
class PeakResult:
    precision: str
    dot: bool  # the dot-product form
    triggers: int
    cycles: int
    macs_per_cycle: float  # measured lane MACs per cycle over the whole run
    peak_macs_per_cycle: int  # the precision's lane count
    energy_per_op_fj: float  # energy model over the run's counters; one MAC = 2 ops


def peak_program(machine: Machine, precision: str, triggers: int, dot: bool = False) -> str:
    acc_op, start_op = DOT_PRECISIONS[precision] if dot else PRECISIONS[precision][1:]
    rows = machine.config.dmem_rows
    lines = [f"3 -> vmac.x, 0 -> vmac.{start_op}"]
    lines += [f"{i % rows} -> vmac.{acc_op}" for i in range(1, triggers)]
    lines[-1] += ", 0 -> ctrl.halt"
    return "\n".join(lines)


def measure_peak(machine: Machine, precision: str, triggers: int = 2000,
                 dot: bool = False) -> PeakResult:
    c = machine.config
    bits = PRECISIONS[precision][0]
    machine.load_program(assemble(peak_program(machine, precision, triggers, dot),
                                  machine.encoding, name=f"peak-{precision}"))
    machine.reset()
    run = machine.run(max_cycles=triggers + 10)
    lane_macs = run.counters[f"vmac_mac{bits}"] * c.lanes_at(bits)
    energy = energy_of(run.counters, c.energy, c.vector_width).total_pj
    return PeakResult(precision, dot, triggers, run.cycles, lane_macs / run.cycles,
                      c.lanes_at(bits),
                      energy * 1e3 / (2 * lane_macs))
