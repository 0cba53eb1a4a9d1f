import pytest

from hw.config import CONFIG_DIR, load_accel_config
from hw.machine import get_machine
from hw.microbench import measure_peak
from hw.units import PRECISIONS

pytestmark = pytest.mark.rtl
BRAINTTA_FJ_PER_OP = {"binary": 35, "ternary": 67, "int8": 405}


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_peak_macs_per_cycle_equal_the_lane_count(name):
    config = load_accel_config(name)
    machine = get_machine("rtl", config)
    for dot in (False, True):
        peaks = {p: measure_peak(machine, p, triggers=500, dot=dot) for p in PRECISIONS}
        for p, r in peaks.items():
            assert r.macs_per_cycle == r.peak_macs_per_cycle == config.lanes_at(PRECISIONS[p][0])
        assert peaks["binary"].macs_per_cycle == 2 * peaks["ternary"].macs_per_cycle \
            == 8 * peaks["int8"].macs_per_cycle


def test_default_energy_is_calibrated_to_braintta():
    machine = get_machine("rtl", load_accel_config("default"))
    for precision, target in BRAINTTA_FJ_PER_OP.items():
        fj = measure_peak(machine, precision).energy_per_op_fj
        assert abs(fj - target) / target < 0.10, (precision, fj)
