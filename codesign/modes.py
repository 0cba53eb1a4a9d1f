"""One vocabulary for where figures come from; each command accepts the modes that make sense for
it, all drawn from this table (engines are `compiler.executor.BACKENDS`)."""

from __future__ import annotations

MODES = {
    # engines: where an integer inference runs (all bit-exact with each other)
    "rtl": "the Verilated core: accuracy, cycles and event counters measured",
    "golden": "the instruction-level model: the same figures as the RTL, slower, no build",
    "reference": "the numpy integer reference: outputs only, no cycles",
    # fidelities: where cycles and energy come from
    "estimate": "the analytic estimator over the static schedule (counters equal to the "
                "RTL's); outputs from the integer reference",
    "screen": "estimate every candidate, confirm on the RTL those that may enter the front",
    "both": "the RTL's figures with the estimate beside them",
}

EVALUATE = ("rtl", "estimate", "both")  # codesign evaluate --fidelity
SEARCH = ("rtl", "golden", "estimate", "screen")  # search.fidelity, the evaluators
RESILIENCE = ("reference", "rtl", "golden")  # codesign resilience --engine


def describe(modes: tuple[str, ...]) -> str:
    """Help text: each allowed mode and what it means."""
    return "; ".join(f"{m}: {MODES[m]}" for m in modes)
