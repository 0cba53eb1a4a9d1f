import pytest

from hw.tb.runner import run_unit_bench

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


@pytest.mark.parametrize("unit, latency", [("alu", 3), ("lsu", 2), ("vmac", 1), ("vmac", 3)])
def test_unit_bench(tiny, tmp_path, unit, latency):
    tests, failures = run_unit_bench(unit, tiny, tmp_path, {"LAT": latency})
    assert tests == 1 and failures == 0
