import pytest

from hw.tb.runner import run_unit_bench

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


@pytest.mark.parametrize("latency", [1, 3])
def test_vmac_unit_bench(tiny, tmp_path, latency):
    tests, failures = run_unit_bench("vmac", tiny, tmp_path, {"LAT": latency})
    assert tests == 1 and failures == 0
