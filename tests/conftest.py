import pytest

from hw.config import load_accel_config


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
