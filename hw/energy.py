"""Energy model: a pure function of the event counters and a per-event energy table (the
config's, with the off-chip memory's pJ per bit: `AccelConfig.energy`).

A model, not a measurement: the per-lane MAC energies of the shipped configs are calibrated so
that the peak microbenchmark (hw/microbench.py) on the default config gives BrainTTA's published
35 / 67 / 405 fJ/op; the other entries are estimates of the right order.
"""

from __future__ import annotations

from dataclasses import dataclass

# Events with an energy cost, in the order configs list them (picojoules per event).
ENERGY_EVENTS = (
    "move",  # one executed bus move
    "rf_read",
    "rf_write",
    "alu_op",
    "lsu_op",
    "ctrl_op",
    "mac8",  # one lane's multiply-accumulate with an 8-bit weight (two ops)
    "mac2",  # ... with a ternary weight
    "mac1",  # ... with a binary weight
    "vmac_op",  # fixed cost of one vector-unit trigger
    "vpp_lane",  # post-processing of one accumulator lane (requantize, threshold, add, max)
    "dmem_read_bit",
    "dmem_write_bit",
    "leakage_cycle",
)


@dataclass(frozen=True)
class EnergyBreakdown:
    compute_pj: float
    memory_pj: float  # the data memory
    interconnect_pj: float  # bus moves and register files
    control_pj: float
    leakage_pj: float
    offchip_pj: float = 0.0  # bits moved to and from the off-chip memory

    @property
    def total_pj(self) -> float:
        return (self.compute_pj + self.memory_pj + self.interconnect_pj + self.control_pj
                + self.leakage_pj + self.offchip_pj)

    @property
    def total_j(self) -> float:
        return self.total_pj * 1e-12


def energy_of(counters: dict[str, int], table: dict[str, float],
              vector_width: int) -> EnergyBreakdown:
    """Energy of one run from its counters (see `hw.isa.counter_names`)."""
    moves = sum(v for k, v in counters.items() if k.startswith("moves_bus"))
    lane_macs = sum(counters[f"vmac_mac{b}"] * (vector_width // b) * table[f"mac{b}"]
                    for b in (8, 2, 1))
    vpp = counters["vpp_groups"] * (vector_width // 8) * table["vpp_lane"]
    return EnergyBreakdown(
        compute_pj=counters["trig_alu"] * table["alu_op"] + lane_macs + vpp
        + counters["trig_vmac"] * table["vmac_op"],
        memory_pj=counters["dmem_read_bits"] * table["dmem_read_bit"]
        + counters["dmem_write_bits"] * table["dmem_write_bit"]
        + counters["trig_lsu"] * table["lsu_op"],
        interconnect_pj=moves * table["move"] + counters["rf_reads"] * table["rf_read"]
        + counters["rf_writes"] * table["rf_write"],
        control_pj=counters["trig_ctrl"] * table["ctrl_op"],
        leakage_pj=counters["cycles"] * table["leakage_cycle"],
        offchip_pj=counters.get("offchip_read_bits", 0) * table.get("offchip_read_bit", 0.0)
        + counters.get("offchip_write_bits", 0) * table.get("offchip_write_bit", 0.0),
    )
