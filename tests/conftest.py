import os

import pytest

from hw.build import cache_root
from hw.config import load_accel_config

# A test over 5 s must be marked `slow`; the guard allows 3x that on a shared, noisy machine
# (CODESIGN_SLOW_TOLERANCE) and sets aside a test during which a core was built or
# synthesized (a cold cache).
SLOW_S = 5.0
TOLERANCE = float(os.environ.get("CODESIGN_SLOW_TOLERANCE", "3"))


def _builds() -> int:
    """Entries of the build caches (Verilated cores, synthesized areas): a new one means the
    test paid for a cold cache."""
    return sum(sum(1 for _ in d.iterdir()) for d in (cache_root(), cache_root().parent / "area")
               if d.is_dir())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    before = _builds()
    yield
    item.built_a_core = _builds() != before


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.when == "call" and report.passed and report.duration > SLOW_S * TOLERANCE \
            and item.get_closest_marker("slow") is None \
            and not getattr(item, "built_a_core", False):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} took {report.duration:.1f} s, over {SLOW_S:.0f} s "
                           f"(x{TOLERANCE:g} for a noisy machine), and is not marked slow: "
                           f"make it cheaper or mark it")


@pytest.fixture(scope="session")
def tiny():
    return load_accel_config("tiny")


@pytest.fixture(scope="session")
def rtl_tiny(tiny):
    from hw.sim import RtlSimulator
    return RtlSimulator(tiny)


@pytest.fixture(scope="session")
def trained_cnn():
    """A small int8 CNN trained on the embedded digits (shared by the tests that need any
    trained network: train once per session)."""
    from codesign.data import load_digits
    from codesign.models import Candidate, build_model
    from codesign.train import TrainConfig, train

    data = load_digits()
    model = train(build_model(Candidate.plain((6, 12), (1, 2)), data.input_shape, 10), data,
                  TrainConfig(epochs=2))
    return model, data
