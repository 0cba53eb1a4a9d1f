"""Repairs of binary networks (arXiv 2206.12322) as candidate options: trained in torch,
compiled bit-exactly, priced on the accelerator."""

import numpy as np
import pytest
import torch

from codesign.data import load_digits
from codesign.evaluate import CALIBRATION_IMAGES, compile_quantnet
from codesign.models import BlockSpec, Candidate, build_model
from codesign.quant import ActQuant
from codesign.space import parse_space
from codesign.train import TrainConfig, train
from compiler.codegen import compile_layers
from hw.config import load_accel_config
from hw.errors import ConfigError


def test_approxsign_has_bi_reals_gradient_and_the_same_forward():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.25, 0.5, 2.0], requires_grad=True)
    q = ActQuant(1, approx_sign=True)
    q.amax.fill_(1.0)  # scale 1
    q.eval()
    y = q(x)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), [-1, -1, 1, 1, 1, 1])
    np.testing.assert_allclose(x.grad.numpy(), [0, 1, 2, 1.5, 1, 0])
    ste = ActQuant(1)
    ste.amax.fill_(1.0)
    ste.eval()
    x2 = x.detach().clone().requires_grad_(True)
    ste(x2).sum().backward()
    np.testing.assert_allclose(x2.grad.numpy(), [0, 1, 1, 1, 1, 0])  # hardtanh's


def test_repairs_are_validated_named_and_keep_old_keys():
    b = BlockSpec(16, 2, bits=(1, 1), residual=True, norm=True, binarizer="approxsign",
                  shortcut8=True)
    c = Candidate((BlockSpec(8), b))
    assert "+res+bn+as+sc8 1/1" in c.describe()
    assert Candidate.from_dict(c.to_dict()) == c
    plain = Candidate((BlockSpec(8), BlockSpec(16, 2, bits=(1, 1))))
    assert set(plain.to_dict()["blocks"][1]) == {"width", "stride", "kernel", "depthwise",
                                                 "residual", "bits"}  # keys of earlier runs
    with pytest.raises(ConfigError, match="binarizer 'tanh'; allowed: ste, approxsign"):
        Candidate((BlockSpec(8), BlockSpec(16, binarizer="tanh")))
    space = parse_space({"depth": [2], "width": [8], "bits": [[1, 1]], "norm": [False, True],
                         "binarizer": ["ste", "approxsign"], "shortcut8": [True]}, "s.yaml")
    assert space.parameters()["b1.norm"] == [False, True]
    with pytest.raises(ConfigError, match="field 'norm': invalid choice 'yes'"):
        parse_space({"depth": [1], "width": [8], "norm": ["yes"]}, "s.yaml")


@pytest.mark.rtl
def test_repaired_binary_network_is_bit_exact_and_priced():
    """Batch norm folds (nothing on the host, no extra cycles), the 8-bit shortcut runs as an
    int8 projection (it costs cycles), two-step training trains; all bit-exact on the RTL."""
    data = load_digits()
    config = load_accel_config("default")

    def build(**options):
        cand = Candidate((BlockSpec(8, bits=(8, 8)),
                          BlockSpec(16, 2, bits=(1, 1), residual=True, **options)),
                         "flatten", (8, 1))
        model = train(build_model(cand, data.input_shape, 10), data,
                      TrainConfig(epochs=2, pretrain_epochs=1, two_step=True))
        return compile_quantnet(model, config, data.x_train[:CALIBRATION_IMAGES])

    plain, repaired = build(), build(norm=True, binarizer="approxsign", shortcut8=True)
    by_name = {layer.name: layer for layer in repaired.layers}
    assert by_name["blocks.1.proj"].w_bits == 8 and by_name["blocks.1.conv"].w_bits == 1
    assert all(p.where == "tta" for p in repaired.placement)  # the batch norm folded
    cycles = {}
    for name, net in (("plain", plain), ("repaired", repaired)):
        with net.runner("rtl") as rtl, net.runner("reference") as ref:
            for i in range(4):
                np.testing.assert_array_equal(rtl(data.x_test[i:i + 1]), ref(data.x_test[i:i + 1]))
        # each layer alone (the runs around it differ: the 8-bit shortcut reads binary
        # values as bytes, which the host widens)
        cycles[name] = {la.name: compile_layers([la], config).layers[la.name].cycles
                        for la in net.layers}
    assert cycles["repaired"]["blocks.1.conv"] == cycles["plain"]["blocks.1.conv"]  # norm free
    assert cycles["repaired"]["blocks.1.proj"] > cycles["plain"]["blocks.1.proj"]  # int8 MACs


@pytest.mark.rtl
def test_a_learnable_threshold_is_trained_and_folds_into_the_producers_bias():
    data = load_digits()
    cand = Candidate((BlockSpec(8, bits=(8, 8)), BlockSpec(16, 2, bits=(1, 1)),
                      BlockSpec(16, 1, bits=(1, 1), binarizer="threshold", norm=True)),
                     "flatten", (8, 1))
    model = train(build_model(cand, data.input_shape, 10), data,
                  TrainConfig(epochs=2, pretrain_epochs=1))
    tau = model.blocks[2].quant.tau.detach().clone()
    assert tau.abs().max() > 0  # learned
    bias = model.blocks[1].conv.bias.detach().clone()  # the producer (no norm of its own)
    net = compile_quantnet(model, load_accel_config("default"), data.x_train[:CALIBRATION_IMAGES])
    assert torch.equal(model.blocks[1].conv.bias, bias)  # the view put it back
    assert [layer.name for layer in net.layers] == ["blocks.0.conv", "blocks.1.conv",
                                                    "blocks.2.conv", "fc"]  # nothing added
    # The integer network decides as the QAT model: sign(x - tau) is the producer's sign.
    with torch.no_grad():
        qat = model(torch.from_numpy(data.x_test[:200])).argmax(1).numpy()
    with net.runner("reference") as ref:
        ints = np.array([np.argmax(ref(data.x_test[i:i + 1])) for i in range(200)])
    assert (qat == ints).mean() > 0.9
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        for i in range(3):
            np.testing.assert_array_equal(rtl(data.x_test[i:i + 1]), ref(data.x_test[i:i + 1]))
    with pytest.raises(ConfigError, match="learnable threshold needs binary input"):
        Candidate((BlockSpec(8), BlockSpec(8, bits=(1, 1), residual=True,
                                           binarizer="threshold")))
