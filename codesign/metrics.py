"""One result type for every evaluation: what a network costs on an accelerator, end to end and
per layer, with its accuracy when labelled images were run (the search's evaluators) and the
estimate beside the RTL when both were asked (`codesign evaluate --fidelity both`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class LayerMetrics:
    name: str
    cycles: int
    energy_j: float
    kind: str = ""  # the layer kind (compiler.kinds)
    bits: str = ""  # weights / input activations -> output (`codesign.hwcost.bits_label`)
    placement: str = "tta"  # host ops cost no accelerator cycles
    energy_breakdown_j: dict[str, float] = field(default_factory=dict)  # compute per
    #                       precision, memory, moves/RF, control, off-chip, leakage
    utilization: float = 0.0  # useful MACs / (cycles x peak MACs/cycle); 0 for row operations
    dmem_read_bits: int = 0
    dmem_write_bits: int = 0
    estimate_cycles: int | None = None
    rtl_cycles: int | None = None


@dataclass(frozen=True)
class Metrics:
    cycles: int  # accelerator cycles of one inference
    latency_s: float  # cycles at the configured clock
    energy_j: float  # of one inference (energy model, not a measurement)
    size_bits: int
    layers: tuple[LayerMetrics, ...]
    fidelity: str = "rtl"  # where the figures come from (codesign.modes)
    accelerator: str = ""
    accuracy: float | None = None  # top-1 with the integer semantics, when images were run
    images: int = 0  # labelled images it was measured on
    sim_cycles_per_s: float = 0.0  # simulated cycles per wall second, whole stack (0: estimated)
    host_ops: tuple[str, ...] = ()  # ops that ran on the host
    estimate_cycles: int | None = None  # fidelity both: the estimator's and the RTL's
    rtl_cycles: int | None = None
    ccr: float | None = None  # classification change rate at the resilience BER
    ccr_proxy: float | None = None  # the topology predictor's CCR at that BER
    ccr_fidelity: str | None = None  # injection | proxy (screened out: the proxy stands in)
    area_ge: float | None = None  # the accelerator's logic and memory cells, when asked
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = [asdict(layer) for layer in self.layers]
        d["host_ops"] = list(self.host_ops)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Metrics":
        return cls(**{**d, "layers": tuple(LayerMetrics(**layer) for layer in d["layers"]),
                      "host_ops": tuple(d.get("host_ops", ()))})
