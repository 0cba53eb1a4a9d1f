import pytest

from hw.tb.runner import run_unit_bench

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


@pytest.mark.parametrize("unit, params", [("alu", {"LAT": 3}), ("lsu", {"LAT": 2}),
                                           ("vmac", {"LAT": 1}), ("vmac", {"LAT": 3}),
                                           ("dma", {"LATENCY": 5, "CPR": 1}),
                                           ("dma", {"LATENCY": 3, "CPR": 4})])
def test_unit_bench(tiny, tmp_path, unit, params):
    tests, failures = run_unit_bench(unit, tiny, tmp_path, params)
    assert tests == 1 and failures == 0
