"""Fidelities of the evaluator: the estimate equals the RTL; screening confirms on the RTL only
candidates that may enter the Pareto front."""

from dataclasses import replace

import pytest

from codesign.data import load_digits
from codesign.evaluate import ScreeningEvaluator, get_evaluator
from codesign.metrics import Metrics
from codesign.models import BlockSpec, Candidate, build_model
from codesign.modes import SEARCH
from codesign.train import TrainConfig, train
from hw.config import load_accel_config

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def trained(trained_cnn):
    return trained_cnn


@pytest.fixture(scope="module")
def on_rtl(trained):
    model, data = trained
    return get_evaluator("rtl", load_accel_config("default"), 12).evaluate(model, data)


@pytest.mark.parametrize("name", SEARCH)
def test_every_evaluator_keeps_the_metrics_contract(trained, on_rtl, name):
    """Whatever the evaluator: figures that add up, integer semantics (the RTL's accuracy)
    and exact costs (the RTL's cycles), per-layer kinds and bits, a lossless round trip."""
    model, data = trained
    config = load_accel_config("default")
    m = get_evaluator(name, config, 12).evaluate(model, data)
    assert m.images == 12 and m.fidelity in ("rtl", "golden", "estimate")
    assert (m.accuracy, m.cycles, m.size_bits) == (on_rtl.accuracy, on_rtl.cycles,
                                                   model.size_bits())
    assert m.cycles == sum(x.cycles for x in m.layers) > 0
    assert m.energy_j == pytest.approx(sum(x.energy_j for x in m.layers), rel=1e-12)
    assert m.energy_j == pytest.approx(on_rtl.energy_j, rel=1e-12)
    assert m.latency_s == pytest.approx(m.cycles / (config.clock_mhz * 1e6), rel=1e-12)
    assert [(x.name, x.kind, x.bits) for x in m.layers] == \
        [(x.name, x.kind, x.bits) for x in on_rtl.layers]
    assert on_rtl.layers[0].bits == "8/8->int8" and on_rtl.layers[-1].kind == "dense"
    assert Metrics.from_dict(m.as_dict()) == m


def test_estimate_fidelity_equals_the_rtl(trained):
    model, data = trained
    config = load_accel_config("default")
    rtl = get_evaluator("rtl", config, 40).evaluate(model, data)
    est = get_evaluator("estimate", config, 40).evaluate(model, data)
    assert est.fidelity == "estimate" and rtl.fidelity == "rtl"
    assert (est.accuracy, est.cycles, est.size_bits) == (rtl.accuracy, rtl.cycles, rtl.size_bits)
    assert est.energy_j == pytest.approx(rtl.energy_j, rel=1e-12)
    assert [(x.name, x.cycles) for x in est.layers] == [(x.name, x.cycles) for x in rtl.layers]


def test_screening_confirms_only_candidates_that_may_enter_the_front(trained):
    model, data = trained
    screen = get_evaluator("screen", load_accel_config("default"), 40)
    assert isinstance(screen, ScreeningEvaluator)
    first = screen.evaluate(model, data)
    assert first.fidelity == "rtl" and screen.confirmed == 1
    # A candidate better in every objective was seen: this one cannot enter the front.
    screen.seen.append(replace(first, accuracy=1.0, cycles=1, energy_j=0.0, size_bits=1))
    second = screen.evaluate(model, data)
    assert second.fidelity == "estimate" and screen.confirmed == 1
    assert (second.cycles, second.accuracy) == (first.cycles, first.accuracy)


@pytest.mark.parametrize("bits", [((8, 8), (2, 2)), ((8, 8), (1, 1)), ((2, 8), (1, 8))])
def test_mixed_precision_candidates_run_on_the_rtl(bits):
    import numpy as np
    import torch

    from codesign.evaluate import compile_quantnet

    data = load_digits()
    model = train(build_model(Candidate.plain((8, 16), (1, 2), bits=bits), data.input_shape, 10),
                  data,
                  TrainConfig(epochs=2))
    assert model.size_bits() == (8 * 9 * bits[0][0] + 16 * 8 * 9 * bits[1][0]
                                 + 10 * 16 * 16 * 8) + (8 + 16 + 10) * 32
    net = compile_quantnet(model, load_accel_config("default"))
    assert [layer.w_bits for layer in net.layers] == [bits[0][0], bits[1][0], 8]
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        x = data.x_test[:60]
        preds = []
        for i in range(len(x)):
            y = rtl(x[i:i + 1])
            np.testing.assert_array_equal(y, ref(x[i:i + 1]))
            preds.append(int(np.argmax(y)))
    with torch.no_grad():
        torch_preds = model(torch.from_numpy(x)).argmax(1).numpy()
    assert np.mean(np.array(preds) == torch_preds) >= 0.9


SPACE_CANDIDATES = [  # what the search spaces produce beyond plain convs
    Candidate((BlockSpec(8, 1, 3), BlockSpec(8, 1, 3, residual=True, bits=(2, 2)),
               BlockSpec(16, 2, 3, residual=True, bits=(1, 1))), "flatten", (2, 8)),
    Candidate((BlockSpec(8, 1, 3), BlockSpec(16, 2, 5, depthwise=True, residual=True),
               BlockSpec(16, 1, 3, depthwise=True, residual=True, bits=(2, 2))), "pool", (1, 8)),
]


@pytest.mark.slow
def test_a_tensor_read_by_several_int8_layers_has_one_scale_and_the_network_one_run():
    """The search's residual candidates (issue 40's trial 0: a projection beside the block's
    convolution, an add feeding the next block): every int8 tensor is written at the scale all
    its readers take, so nothing is requantized by the host and the network is one run, with
    the integer reference and the golden model in agreement."""
    import numpy as np
    import torch

    from codesign.evaluate import compile_quantnet

    candidate = Candidate((BlockSpec(32, 2, 3), BlockSpec(16, 2, 3, residual=True),
                           BlockSpec(32, 2, 3, depthwise=True, residual=True)), "flatten", (8, 8))
    torch.manual_seed(0)
    model = build_model(candidate, (1, 16, 16), 10)
    model.train()
    with torch.no_grad():  # scales as training leaves them: one per quantizer
        model(torch.randn(16, 1, 16, 16))
    model.eval()
    cal = np.random.default_rng(0).standard_normal((8, 1, 16, 16)).astype(np.float32)
    net = compile_quantnet(model, load_accel_config("default"), cal)
    assert len(net.program.segments) == 1, net.placement_report()
    layers = {layer.name: layer for layer in net.layers}
    for a, b in (("blocks.0.conv", "blocks.1.conv"), ("blocks.0.conv", "blocks.1.proj"),
                 ("add_0", "blocks.2.dw"), ("add_0", "blocks.2.proj")):
        assert np.all(layers[a].out.scale == layers[b].in_scale), (a, b)
    with net.runner("golden") as g, net.runner("reference") as r:
        for x in cal[:3]:
            np.testing.assert_array_equal(g(x[None]), r(x[None]))


@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.parametrize("width,bits", [(4, (1, 1)), (12, (1, 1)), (4, (2, 2))])
def test_a_narrow_layer_hands_low_bit_positions_to_the_next_in_one_run(width, bits):
    """The demo space's conv 4 8/8 -> conv 1/1: the first layer's binary output (4 bits a
    position) once had no copy into the next layer's word positions and ended the run; it now
    writes whole words (lanes past the channels -1) that the hand-over moves whole."""
    import numpy as np
    import torch

    from codesign.evaluate import compile_quantnet

    candidate = Candidate.plain((width, 24), (1, 2), bits=[(8, 8), bits])
    torch.manual_seed(width)
    model = build_model(candidate, (1, 8, 8), 10)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 8, 8))
    model.eval()
    cal = np.random.default_rng(width).standard_normal((8, 1, 8, 8)).astype(np.float32)
    net = compile_quantnet(model, load_accel_config("default"), cal)
    assert len(net.program.segments) == 1, net.placement_report()
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        for x in cal[:4]:
            np.testing.assert_array_equal(rtl(x[None]), ref(x[None]))
            for name, y in ref.int_outputs.items():
                np.testing.assert_array_equal(rtl.int_outputs[name], y, err_msg=name)


@pytest.mark.parametrize("candidate", SPACE_CANDIDATES, ids=["residual", "depthwise-pool"])
def test_search_space_candidates_are_bit_exact_on_the_rtl(candidate):
    """Residual adds with 1x1 projections, depthwise-separable blocks, a pooled head and low-bit
    classifiers: RTL = integer reference, which agrees with the fake-quant torch model."""
    import numpy as np
    import torch

    from codesign.evaluate import CALIBRATION_IMAGES, compile_quantnet

    data = load_digits()
    model = train(build_model(candidate, data.input_shape, 10), data,
                  TrainConfig(epochs=3, pretrain_epochs=3))
    net = compile_quantnet(model, load_accel_config("default"),
                           data.x_train[:CALIBRATION_IMAGES])
    kinds = {layer.name.split("_")[0] for layer in net.layers}
    assert "add" in kinds
    x = data.x_test[:100]
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        preds = []
        for i in range(len(x)):
            y = ref(x[i:i + 1])
            if i < 12:
                np.testing.assert_array_equal(rtl(x[i:i + 1]), y)
            preds.append(int(np.argmax(y)))
    with torch.no_grad():
        torch_preds = model(torch.from_numpy(x)).argmax(1).numpy()
    assert np.mean(np.array(preds) == torch_preds) >= 0.85
