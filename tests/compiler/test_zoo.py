"""Every zoo network compiled for the default accelerator and run on the RTL: bit-exact against
the integer reference in every layer, and within quantization error of the fake-quant model."""

import numpy as np
import pytest
import torch

from compiler.pipeline import compile_model
from hw.config import load_accel_config
from compiler.zoo import ZOO, build

pytestmark = pytest.mark.rtl

ALL_8_BIT = {"mlp", "lenet", "vgg", "resnet8", "mobilenet", "dilated_vgg", "deeplab"}


@pytest.mark.parametrize("entry", ZOO, ids=[e.name for e in ZOO])
def test_zoo_network_on_the_rtl(entry):
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((8, *entry.input_shape)).astype(np.float32)
    net = compile_model(build(entry), torch.from_numpy(calibration[:1]),
                        load_accel_config("default"), entry.quant, calibration)
    assert all(p.where == "tta" for p in net.placement), net.placement_report()
    fake_quant = net.fake_quant()
    try:
        with net.runner("rtl") as rtl, net.runner("reference") as ref:
            for _ in range(2):
                x = rng.standard_normal((1, *entry.input_shape)).astype(np.float32)
                y, y_ref, y_fq = rtl(x), ref(x), fake_quant(x)
                for layer in net.layers:
                    np.testing.assert_array_equal(rtl.int_outputs[layer.name],
                                                  ref.int_outputs[layer.name], err_msg=layer.name)
                np.testing.assert_array_equal(y, y_ref)
                assert rtl.cycles == sum(b.cycles for b in net.program.layers.values())
                error = np.linalg.norm(y - y_fq) / np.linalg.norm(y_fq)
                assert error < (0.02 if entry.name in ALL_8_BIT else 0.1), error
    finally:
        fake_quant.close()


def test_zoo_covers_binary_ternary_and_mixed_precision():
    assert len(ZOO) >= 8
    specs = [e.quant.get("layers", {}) for e in ZOO]
    bits = {(b["weights"], b.get("activations", 8)) for s in specs for b in s.values()}
    assert {(1, 1), (2, 2)} <= bits and len(bits) >= 5  # binary, ternary and mixed pairs
