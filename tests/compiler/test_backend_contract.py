"""What every `Backend` must do, one suite run against each (reference, golden model, RTL):
the same integer output for the same integer input, statistics where it has cycles, and inputs
that do not match the layer refused by name."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from compiler.errors import CompileError
from compiler.executor import BACKENDS, get_backend
from compiler.pipeline import compile_model
from compiler.zoo import ZOO, build
from hw.config import load_accel_config

pytestmark = pytest.mark.rtl

ENTRY = replace(next(e for e in ZOO if e.name == "mlp"),  # int8, ternary and binary layers
                quant={"layers": {"fc2": {"weights": 2, "activations": 8},
                                  "fc3": {"weights": 1, "activations": 2}}})


@pytest.fixture(scope="module")
def net():
    cal = np.random.default_rng(0).standard_normal((4, *ENTRY.input_shape)).astype(np.float32)
    return compile_model(build(ENTRY), torch.from_numpy(cal[:1]), load_accel_config("tiny"),
                         ENTRY.quant, cal)


@pytest.fixture(scope="module")
def layer_inputs(net):
    """Each layer's integer inputs on one input, from the reference runner."""
    x = np.random.default_rng(1).standard_normal((1, *ENTRY.input_shape)).astype(np.float32)
    with net.runner("reference") as ref:
        ref(x)
        return dict(ref.int_inputs), dict(ref.int_outputs)


@pytest.fixture(params=["reference", "golden", "rtl", "rtl-fault"])
def backend(request, net):
    return get_backend(request.param, net.program)


def test_every_layer_gives_the_reference_output(backend, net, layer_inputs):
    inputs, outputs = layer_inputs
    for layer in net.layers:
        y, stats = backend.run(layer.name, *inputs[layer.name])
        np.testing.assert_array_equal(y, outputs[layer.name], err_msg=layer.name)
        assert y.shape == tuple(layer.out_shape)
        if backend.name == "reference":
            assert stats is None
        else:  # the compiler's exact cycle count of the layer
            b = net.program.layers[layer.name]
            assert stats.cycles == b.cycles * b.tiles == stats.counters["cycles"]


def test_inputs_that_do_not_match_are_refused_by_name(backend, net, layer_inputs):
    inputs, _ = layer_inputs
    first = net.layers[0].name
    with pytest.raises(CompileError, match=f"layer {first}: input of 3 values"):
        backend.run(first, np.zeros(3))
    with pytest.raises(CompileError, match=f"layer {first}: 2 inputs, expected 1"):
        backend.run(first, *inputs[first], *inputs[first])
    with pytest.raises(CompileError, match="no compiled layer 'nope'"):
        backend.run("nope", *inputs[first])


def test_unknown_backends_are_named(net):
    with pytest.raises(CompileError, match="unknown backend 'fpga'; allowed: " +
                       ", ".join(BACKENDS)):
        get_backend("fpga", net.program)
