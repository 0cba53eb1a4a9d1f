import pytest

from hw.config import load_accel_config


@pytest.fixture(scope="session")
def tiny():
    return load_accel_config("tiny")


@pytest.fixture(scope="session")
def rtl_tiny(tiny):
    from hw.sim import RtlSimulator
    return RtlSimulator(tiny)
