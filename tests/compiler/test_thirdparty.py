"""Model code nobody here wrote: torchvision's classification networks (random weights, 10
classes, 3x32x32, int8 on `default`) compile and run bit-exact, every layer, against the
integer reference, with nothing on the host. squeezenet1_1 found a wrong answer once (a
concatenation's input overwritten by streamed constants); mobilenet_v3_small has lookup-table
activations and squeeze-and-excitation; shufflenet_v2 channel shuffles and splits.
(EfficientNet-B0, whose compact code once looped depthwise chunks as if they read the same
channels, is checked by `make bench-thirdparty`: 25 s here.)"""

import numpy as np
import pytest
import torch

from compiler.pipeline import compile_model
from compiler.thirdparty import TORCHVISION
from hw.config import load_accel_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_small", "shufflenet_v2_x0_5"])
def test_torchvision_network_bit_exact_every_layer(name):
    entry = next(e for e in TORCHVISION if e.name == name)
    torch.manual_seed(0)
    model = entry.factory().eval()
    cal = torch.randn(8, 3, 32, 32)
    config = load_accel_config("default")
    net = compile_model(model, cal[:1], config, None, cal.numpy())
    assert len(net.program.program.words) <= config.imem_depth
    # the host computes nothing (squeezenet's flatten of its output is a reshape)
    assert all(p.where == "tta" or p.op == "reshape" for p in net.placement), \
        net.placement_report()
    with net.runner("golden") as acc, net.runner("reference") as ref:
        x = net.random_inputs(1, 3)
        np.testing.assert_array_equal(acc(x), ref(x))
        for layer in net.layers:
            np.testing.assert_array_equal(acc.int_outputs[layer.name],
                                          ref.int_outputs[layer.name], err_msg=layer.name)
        assert acc.cycles == sum(b.cycles for b in net.program.layers.values())
