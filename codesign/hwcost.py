"""What a compiled network costs on its accelerator, per layer and end to end.

Two fidelities behind one function: `estimate` (the analytic estimator over the generated
schedule, no simulation) and `rtl` (one inference on the Verilated core); `both` gives the RTL
figures with the estimate beside them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from codesign.errors import CodesignError
from codesign.metrics import LayerMetrics, Metrics
from codesign.modes import EVALUATE as FIDELITIES
from compiler.estimate import estimate
from compiler.kinds import get_kind
from compiler.runtime import CompiledNetwork
from hw.energy import energy_of


def bits_label(layer) -> str:
    """A layer's precisions as people read them: weights / input activations -> output kind
    ("1/1->int8"; "-/8->int8" for layers without weights)."""
    w, a = getattr(layer, "w_bits", None), getattr(layer, "a_bits", None)
    return (f"{w}/{a}" if w else f"-/{a}" if a else "") + f"->{layer.out.kind}"


def size_bits(net: CompiledNetwork) -> int:
    """Weights at their bit width, plus a 32-bit bias per output channel."""
    return sum(get_kind(layer.kind).size_bits(layer) for layer in net.layers)


def _breakdown(counters: dict[str, int], config) -> dict[str, float]:
    table, w = config.energy, config.vector_width
    e = energy_of(counters, table, w)
    per_precision = {f"compute_mac{b}": counters[f"vmac_mac{b}"] * (w // b) * table[f"mac{b}"]
                     for b in (8, 2, 1)}
    other_compute = e.compute_pj - sum(per_precision.values())
    parts = {**per_precision, "compute_other": other_compute, "memory": e.memory_pj,
             "moves_and_registers": e.interconnect_pj, "control": e.control_pj,
             "offchip": e.offchip_pj,
             "leakage": e.leakage_pj}
    return {k: v * 1e-12 for k, v in parts.items()}


def layer_metrics(net: CompiledNetwork, counters: dict[str, dict[str, int]]) -> tuple:
    """Per-layer figures from each layer's event counters (RTL or estimator); a layer without
    counters (an ensemble member's shared layer, not run) is left out."""
    config, out = net.config, []
    for layer in net.layers:
        if layer.name not in counters:
            continue
        c, b = counters[layer.name], net.program.layers[layer.name]
        breakdown = _breakdown(c, config)
        peak = config.lanes_at(b.mac_bits) if b.mac_bits else 0
        out.append(LayerMetrics(
            layer.name, c["cycles"], sum(breakdown.values()), layer.kind, bits_label(layer),
            "tta", breakdown, b.macs / (c["cycles"] * peak) if peak else 0.0,
            c["dmem_read_bits"], c["dmem_write_bits"]))
    return tuple(out)


def network_cost(net: CompiledNetwork, fidelity: str = "both",
                 x: np.ndarray | None = None) -> Metrics:
    """Per-layer and total cost of one inference (for the RTL: on input x, default random;
    the schedule is static, so any input gives the same counts)."""
    if fidelity not in FIDELITIES:
        raise CodesignError(f"unknown fidelity {fidelity!r}; allowed: {', '.join(FIDELITIES)}")
    config = net.config
    est = estimate(net.program)
    rtl = None
    if fidelity != "estimate":
        if x is None:
            x = net.random_inputs(1)
        with net.runner("rtl") as runner:
            runner(x)
            rtl = {r.name: r.counters for r in runner.layer_runs}
    layers = layer_metrics(net, rtl or est)
    both = fidelity == "both"
    if both:
        layers = tuple(replace(m, estimate_cycles=est[m.name]["cycles"],
                               rtl_cycles=rtl[m.name]["cycles"]) for m in layers)
    cycles = sum(m.cycles for m in layers)
    return Metrics(
        cycles, cycles / (config.clock_mhz * 1e6), sum(m.energy_j for m in layers),
        size_bits(net), layers, fidelity, accelerator=config.name,
        host_ops=tuple(p.op for p in net.placement if p.where != "tta"),
        estimate_cycles=sum(e["cycles"] for e in est.values()) if both else None,
        rtl_cycles=sum(c["cycles"] for c in rtl.values()) if both else None)


def table(cost: Metrics) -> str:
    both = cost.fidelity == "both"
    head = (f"{'layer':<22} {'kind':<7} {'cycles':>9} {'energy nJ':>10} {'util':>6} "
            f"{'read kB':>8} {'write kB':>8}" + (f" {'estimate':>9} {'error':>7}" if both else ""))
    rows = [f"accelerator '{cost.accelerator}', fidelity {cost.fidelity}", head]
    for layer in cost.layers:
        row = (f"{layer.name:<22} {layer.kind:<7} {layer.cycles:>9} {layer.energy_j * 1e9:>10.2f} "
               f"{100 * layer.utilization:>5.1f}% {layer.dmem_read_bits / 8e3:>8.1f} "
               f"{layer.dmem_write_bits / 8e3:>8.1f}")
        if both:
            err = (layer.estimate_cycles - layer.rtl_cycles) / layer.rtl_cycles
            row += f" {layer.estimate_cycles:>9} {100 * err:>6.2f}%"
        rows.append(row)
    rows.append(f"total: {cost.cycles} cycles = {cost.latency_s * 1e6:.2f} us, "
                f"{cost.energy_j * 1e9:.2f} nJ (energy model), {cost.size_bits} bits of weights"
                + (f"; host ops: {', '.join(cost.host_ops)}" if cost.host_ops else
                   "; every op on the accelerator"))
    return "\n".join(rows)


def bar_chart(cost: Metrics, path) -> None:
    """Per-layer cycles and energy as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [layer.name for layer in cost.layers]
    fig, axes = plt.subplots(1, 2, figsize=(12, max(3, 0.3 * len(names) + 1.5)))
    axes[0].barh(names, [layer.cycles for layer in cost.layers], color="tab:blue")
    axes[0].set_xlabel("cycles")
    axes[1].barh(names, [layer.energy_j * 1e9 for layer in cost.layers], color="tab:orange")
    axes[1].set_xlabel("energy (nJ, model)")
    for ax in axes:
        ax.invert_yaxis()
    fig.suptitle(f"{cost.cycles} cycles, {cost.energy_j * 1e9:.1f} nJ on '{cost.accelerator}' "
                 f"({cost.fidelity})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
