"""Generated TTA code, run on the golden model and the RTL, equals the numpy reference."""

import numpy as np
import pytest

from compiler.codegen import compile_layers
from compiler.errors import CompileError
from compiler.executor import get_backend
from compiler.intsem import Requant
from compiler.layer_ir import Conv2d, Dense

pytestmark = pytest.mark.rtl


def random_conv(rng, name, requant=True):
    c, o = int(rng.integers(1, 4)), int(rng.integers(1, 12))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sy, sx = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    dy, dx = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    py, px = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    h, w = int(rng.integers(max(3, (kh - 1) * dy + 1), 7)), int(rng.integers(max(3, (kw - 1) * dx + 1), 7))
    oh, ow = (h + 2 * py - dy * (kh - 1) - 1) // sy + 1, (w + 2 * px - dx * (kw - 1) - 1) // sx + 1
    rq = Requant.from_scale(float(rng.uniform(1e-3, 0.05)), bool(rng.integers(0, 2))) if requant else None
    return Conv2d(name, (c, h, w), (o, oh, ow), rng.integers(-127, 128, (o, c, kh, kw)).astype(np.int8),
                  rng.integers(-5000, 5000, o).astype(np.int32), (sy, sx), (py, px), (dy, dx), rq,
                  0.1, 0.1)


def check(layers, config, rng, images=2):
    compiled = compile_layers(layers, config)
    backends = [get_backend(n, compiled) for n in ("reference", "golden", "rtl")]
    for layer in layers:
        shape = layer.in_shape if isinstance(layer, Conv2d) else (layer.in_features,)
        for _ in range(images):
            x = rng.integers(-128, 128, shape).astype(np.int8)
            (ref, _), (gold, g_run), (rtl, r_run) = (b.run(layer.name, x) for b in backends)
            np.testing.assert_array_equal(gold, ref, err_msg=f"golden vs reference, {layer.name}")
            np.testing.assert_array_equal(rtl, ref, err_msg=f"RTL vs reference, {layer.name}")
            assert g_run.cycles == r_run.cycles == compiled.layers[layer.name].cycles
            assert g_run.counters == r_run.counters


def test_random_convolutions(tiny):
    rng = np.random.default_rng(11)
    for i in range(12):
        layers = [random_conv(rng, f"conv{i}", requant=bool(i % 3))]
        try:
            check(layers, tiny, rng)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlayer: {layers[0]}") from None


def test_dense_layers_share_one_program(tiny):
    rng = np.random.default_rng(3)
    layers = [Dense("fc1", 40, 12, rng.integers(-127, 128, (12, 40)).astype(np.int8),
                    rng.integers(-900, 900, 12).astype(np.int32), Requant.from_scale(0.004, True),
                    0.1, 0.1),
              Dense("fc2", 12, 5, rng.integers(-127, 128, (5, 12)).astype(np.int8),
                    rng.integers(-900, 900, 5).astype(np.int32), None, 0.1, 0.01)]
    check(layers, tiny, rng, images=3)


def test_layer_too_large_names_the_layer(tiny):
    rng = np.random.default_rng(0)
    big = Dense("huge", 600, 16, rng.integers(-127, 128, (16, 600)).astype(np.int8),
                np.zeros(16, np.int32), None, 0.1, 0.1)
    with pytest.raises(CompileError, match="layer huge: weights: .* do not fit the data memory"):
        compile_layers([big], tiny)
