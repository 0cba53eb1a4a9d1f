from codesign import modes
from codesign.evaluate import EVALUATORS
from codesign.metrics import Metrics
from codesign.experiment import FIDELITIES
from codesign.hwcost import FIDELITIES as EVALUATE_FIDELITIES
from codesign.objectives import OBJECTIVES
from compiler.executor import BACKENDS


def test_every_command_draws_its_modes_from_one_table():
    assert set(modes.EVALUATE + modes.SEARCH + modes.RESILIENCE) <= modes.MODES.keys()
    assert set(modes.RESILIENCE) <= set(BACKENDS) and "rtl-fault" in BACKENDS
    assert FIDELITIES == EVALUATORS == modes.SEARCH and EVALUATE_FIDELITIES == modes.EVALUATE
    assert "estimate: the analytic estimator" in modes.describe(modes.EVALUATE)


def test_every_objective_reads_a_metrics_field():
    fields = Metrics.__dataclass_fields__
    for o in OBJECTIVES.values():
        assert o.field in fields and o.direction in ("maximize", "minimize"), o
    assert OBJECTIVES["energy"].show(2.5e-9) == "2.5" and OBJECTIVES["cycles"].show(7.0) == "7"
    assert OBJECTIVES["cycles"].label == "cycles" and OBJECTIVES["size"].show(None) == "-"
