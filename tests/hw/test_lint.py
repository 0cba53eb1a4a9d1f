import pytest

from hw.build import lint
from hw.config import CONFIG_DIR, load_accel_config

pytestmark = pytest.mark.rtl


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_verilator_wall_is_clean(name):
    assert lint(load_accel_config(name)) == []
