"""The objectives a search can optimize, in one table: which `Metrics` field each reads, its
direction, and how people see it (unit and scale). The study's directions, the constraints, the
screening policy, the trials table and the reports all read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    name: str  # as a config names it
    field: str  # the Metrics field it reads
    direction: str  # Optuna's: maximize | minimize
    unit: str  # of the shown value
    scale: float = 1.0  # shown value = field value x scale
    fmt: str = ".4g"  # format of the shown value
    column: int = 9  # width in the trials table

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def label(self) -> str:
        return self.name if self.unit == self.name else f"{self.name} ({self.unit})"

    def show(self, value: float | None) -> str:
        if value is None:
            return "-"
        v = value * self.scale
        return format(int(round(v)), "d") if self.fmt == "d" else format(v, self.fmt)


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("accuracy", "accuracy", "maximize", "top-1", fmt=".3f", column=8),
    Objective("cycles", "cycles", "minimize", "cycles", fmt="d", column=8),
    Objective("latency", "latency_s", "minimize", "us", 1e6, ".1f", 10),
    Objective("energy", "energy_j", "minimize", "nJ", 1e9, ".1f"),
    Objective("size", "size_bits", "minimize", "bits", fmt="d"),
    Objective("area", "area_ge", "minimize", "kGE", 1e-3, ".1f"),  # the accelerator's
    #                             (hw.area: Yosys synthesis, cached per config; memories as cells)
    Objective("resilience", "ccr", "minimize", "CCR", fmt=".3f", column=6),  # fault injection
    Objective("resilience_proxy", "ccr_proxy", "minimize", "predicted CCR", fmt=".3f",
              column=6),  # the topology predictor's CCR
)}

# The hardware objectives, exact before training (the estimator on the candidate's shapes).
HARDWARE = ("cycles", "latency", "energy", "size", "area")
