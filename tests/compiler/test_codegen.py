"""Generated TTA code, run on the golden model and the RTL, equals the numpy reference."""

import numpy as np
import pytest

from compiler.codegen import compile_layers
from compiler.errors import CompileError
from compiler.executor import get_backend
from compiler.intsem import Requant, act_range
from compiler.layer_ir import Add, Affine, Conv2d, Dense, Output, Pool

pytestmark = pytest.mark.rtl


def random_weights(rng, shape, bits):
    if bits == 8:
        return rng.integers(-127, 128, shape).astype(np.int8)
    return rng.choice([-1, 0, 1] if bits == 2 else [-1, 1], shape).astype(np.int8)


def random_output(rng, o, kind):
    scale = np.full(o, 0.1)
    if kind == "int8":
        scales = np.exp(rng.uniform(np.log(1e-3), np.log(4.0), o))  # >= 0.5: left shifts
        rq = Requant.from_scale(scales, relu=bool(rng.integers(0, 2)),
                                hi=int(rng.choice([127, 100])))
        return Output("int8", scale, requant=rq)
    if kind == "ternary":
        return Output("ternary", scale, thresholds=rng.integers(0, 300, o))
    return Output(kind, scale)


def random_conv(rng, name, kind=None, w_bits=None, a_bits=None, groups=None):
    w_bits = w_bits or int(rng.choice([8, 2, 1]))
    a_bits = a_bits or int(rng.choice([8, 2, 1]))
    groups = groups or (int(rng.choice([1, 1, 2])) if w_bits != 1 else 1)
    c = groups * int(rng.integers(1, 6))
    o = groups * int(rng.integers(1, 10))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sy, sx = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    dy, dx = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    pad = tuple(int(rng.integers(0, k)) for k in (kh, kw, kh, kw))
    h = int(rng.integers(max(3, (kh - 1) * dy + 1), 7))
    w = int(rng.integers(max(3, (kw - 1) * dx + 1), 7))
    oh = (h + pad[0] + pad[2] - dy * (kh - 1) - 1) // sy + 1
    ow = (w + pad[1] + pad[3] - dx * (kw - 1) - 1) // sx + 1
    kind = kind or str(rng.choice(["int8", "ternary", "binary", "int32"]))
    return Conv2d(name, (c, h, w), (o, oh, ow),
                  random_weights(rng, (o, c // groups, kh, kw), w_bits),
                  rng.integers(-500, 500, o).astype(np.int32), (sy, sx), pad, (dy, dx), groups,
                  w_bits, a_bits, 0.1, random_output(rng, o, kind))


def random_input(rng, layer):
    bits = layer.a_bits if isinstance(layer, (Conv2d, Dense)) else 8
    if bits == 1:
        return rng.choice([-1, 1], layer.in_shape).astype(np.int8)
    lo, hi = act_range(bits)
    return rng.integers(lo, hi + 1, layer.in_shape).astype(np.int8)


def check(layers, config, rng, images=2, host_inputs=frozenset(), compact=False):
    compiled = compile_layers(layers, config, host_inputs=host_inputs, compact=compact)
    backends = [get_backend(n, compiled) for n in ("reference", "golden", "rtl")]
    for layer in layers:
        for _ in range(images):
            xs = [random_input(rng, layer)]
            if isinstance(layer, Add):
                xs.append(random_input(rng, layer))
            (ref, _), (gold, g_run), (rtl, r_run) = (b.run(layer.name, *xs) for b in backends)
            np.testing.assert_array_equal(gold, ref, err_msg=f"golden vs reference, {layer.name}")
            np.testing.assert_array_equal(rtl, ref, err_msg=f"RTL vs reference, {layer.name}")
            assert g_run.cycles == r_run.cycles == compiled.layers[layer.name].cycles
            assert g_run.counters == r_run.counters
    return compiled


@pytest.mark.parametrize("seed", range(4))
def test_random_convolutions_all_precisions(tiny, seed):
    rng = np.random.default_rng(seed)
    for i in range(6):
        layer = random_conv(rng, f"conv{i}")
        try:
            check([layer], tiny, rng)
        except (AssertionError, CompileError) as exc:
            raise AssertionError(f"{exc}\nlayer: {layer.in_shape}->{layer.out_shape} "
                                 f"k={layer.kernel} s={layer.stride} p={layer.padding} "
                                 f"d={layer.dilation} g={layer.groups} w{layer.w_bits} "
                                 f"a{layer.a_bits} {layer.out.kind}") from None


@pytest.mark.parametrize("w_bits,a_bits", [(8, 8), (2, 2), (1, 1), (1, 8), (8, 1), (2, 1)])
def test_wide_channels_every_pair_on_default(w_bits, a_bits):
    """Channel counts past one word and one chunk, positions packed per lane group, several
    accumulator blocks per iteration (21 columns: a partial last iteration)."""
    from hw.config import load_accel_config
    rng = np.random.default_rng(w_bits * 10 + a_bits)
    config = load_accel_config("default")
    layers = [
        Conv2d("c40", (40, 5, 5), (40, 5, 5), random_weights(rng, (40, 40, 3, 3), w_bits),
               rng.integers(-500, 500, 40).astype(np.int32), (1, 1), (1, 1, 1, 1), (1, 1), 1,
               w_bits, a_bits, 0.1, random_output(rng, 40, "int8")),
        Conv2d("c16", (33, 6, 6), (16, 3, 3), random_weights(rng, (16, 33, 3, 3), w_bits),
               rng.integers(-500, 500, 16).astype(np.int32), (2, 2), (1, 1, 0, 0), (1, 1), 1,
               w_bits, a_bits, 0.1, random_output(rng, 16, str(rng.choice(["binary", "ternary"])))),
        Conv2d("c200", (8, 3, 3), (200, 3, 3), random_weights(rng, (200, 8, 1, 1), w_bits),
               rng.integers(-500, 500, 200).astype(np.int32), (1, 1), (0, 0, 0, 0), (1, 1), 1,
               w_bits, a_bits, 0.1, random_output(rng, 200, "int8")),
        Conv2d("rows", (8, 3, 21), (16, 3, 21), random_weights(rng, (16, 8, 3, 3), w_bits),
               rng.integers(-500, 500, 16).astype(np.int32), (1, 1), (1, 1, 1, 1), (1, 1), 1,
               w_bits, a_bits, 0.1,
               random_output(rng, 16, str(rng.choice(["int8", "binary", "ternary"])))),
    ]
    compiled = check(layers, config, rng, images=1)
    assert compiled.layers["rows"].tiling["positions_per_trigger"] > 1  # narrow: packed


def test_dense_pool_add_share_one_program(tiny):
    rng = np.random.default_rng(3)
    o = random_output
    layers = [
        Dense("fc1", (4, 3, 3), 12, random_weights(rng, (12, 36), 8),
              rng.integers(-900, 900, 12).astype(np.int32), 8, 8, 0.1, o(rng, 12, "int8")),
        Dense("fc2", (12,), 5, random_weights(rng, (5, 12), 8),
              rng.integers(-900, 900, 5).astype(np.int32), 8, 8, 0.1, o(rng, 5, "int32")),
        Pool("max", "max", (10, 5, 6), (10, 3, 3), (2, 2), (2, 2), (1, 0, 0, 0), 0.1,
             Output("int8", np.full(10, 0.1))),
        Pool("avg", "avg", (10, 4, 4), (10, 1, 1), (4, 4), (1, 1), (0, 0, 0, 0), 0.1,
             Output("int8", np.full(10, 0.1), requant=Requant.from_scale(1 / 16 * 0.9))),
        Add("add", (9, 3, 2), 300, 77, 0.1, 0.1,
            Output("int8", np.full(9, 0.1), requant=Requant.from_scale(1 / 400, relu=True))),
    ]
    check(layers, tiny, rng, images=3)


@pytest.mark.parametrize("accel", ["default", "wide"])
def test_narrow_pools_pack_positions_into_rows_or_run_as_depthwise(accel):
    """Few channels: max pools without padding put several positions in a row (gathered per
    tap by the LSU, then combined a row at a time), whether their windows tile the input or
    overlap; average pools (any window, padded too) run as depthwise convolutions of weight 1;
    odd sizes leave input rows and columns unread."""
    from hw.config import load_accel_config
    config = load_accel_config(accel)
    rng = np.random.default_rng(11)
    most = config.vector_width // 64  # 8 * next_pow2(c) bytes fit a row
    layers = []
    for i in range(8):
        c = int(rng.integers(1, most + 1))
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(2, 4))
        h, w = kh * int(rng.integers(1, 4)) + int(rng.integers(0, kh)), \
            kw * int(rng.integers(2, 5)) + int(rng.integers(0, kw))
        if i % 2:
            sy, sx = int(rng.integers(1, kh + 1)), int(rng.integers(1, kw + 1))
            pad = (int(rng.integers(0, kh)), int(rng.integers(0, kw)), 0, 0)
            out = Output("int8", np.full(c, 0.1),
                         requant=Requant.from_scale(0.9 / (kh * kw), relu=bool(i % 3)))
            shape = (c, (h + pad[0] - kh) // sy + 1, (w + pad[1] - kw) // sx + 1)
            layers.append(Pool(f"avg{i}", "avg", (c, h, w), shape, (kh, kw), (sy, sx), pad,
                               0.1, out))
        elif i % 4 == 0:  # windows that tile the input
            layers.append(Pool(f"max{i}", "max", (c, h, w), (c, h // kh, w // kw), (kh, kw),
                               (kh, kw), (0, 0, 0, 0), 0.1, Output("int8", np.full(c, 0.1))))
        else:  # overlapping windows of positions of a word (they pack too)
            c, sy, sx = min(c, 4), int(rng.integers(1, kh + 1)), int(rng.integers(1, kw))
            layers.append(Pool(f"max{i}", "max", (c, h, w),
                               (c, (h - kh) // sy + 1, (w - kw) // sx + 1), (kh, kw), (sy, sx),
                               (0, 0, 0, 0), 0.1, Output("int8", np.full(c, 0.1))))
    compiled = check(layers, config, rng, images=2)
    for layer in layers:
        info = compiled.layers[layer.name].tiling
        if layer.op == "max":
            assert info["positions_per_row"] >= 8
        else:
            assert "positions_per_trigger" in info  # the depthwise convolution's plan


def test_activations_larger_than_the_memory_run_in_row_tiles(tiny):
    """tiny keeps activations in a 2 KiB bank: a 20x20x8 input (3.2 KB) and a pool are tiled."""
    rng = np.random.default_rng(5)
    layers = [
        Conv2d("conv", (8, 20, 20), (8, 10, 20), random_weights(rng, (8, 8, 3, 3), 8),
               rng.integers(-500, 500, 8).astype(np.int32), (2, 1), (1, 1, 1, 1), (1, 1), 1,
               8, 8, 0.1, random_output(rng, 8, "int8")),
        Pool("pool", "max", (8, 20, 20), (8, 10, 10), (3, 3), (2, 2), (1, 1, 1, 1), 0.1,
             Output("int8", np.full(8, 0.1))),
    ]
    compiled = check(layers, tiny, rng, images=1)
    for name in ("conv", "pool"):
        b = compiled.layers[name]
        assert b.row_tiling.tiles > 1 and b.tiling["row_tiles"] == b.row_tiling.tiles
        assert b.cycles == b.row_tiling.tiles * b.row_tiling.cycles_per_tile


def test_weights_twice_the_memory_stream_and_past_that_a_clear_error(tiny):
    """tiny (4 KiB): a 24 -> 40 3x3 conv (8.6 KiB of weights) runs in segments of output
    chunks, bit-exact; one chunk of a 512-channel input (9 KiB) cannot fit at all."""
    rng = np.random.default_rng(0)
    layer = Conv2d("big", (24, 6, 6), (40, 6, 6), random_weights(rng, (40, 24, 3, 3), 8),
                   np.zeros(40, np.int32), (1, 1), (1, 1, 1, 1), (1, 1), 1, 8, 8, 0.1,
                   random_output(rng, 40, "int8"))
    compiled = check([layer], tiny, rng, images=1)
    assert compiled.layers["big"].tiling["weight_segments"] > 2
    huge = Conv2d("huge", (512, 3, 3), (4, 3, 3), random_weights(rng, (4, 512, 3, 3), 8),
                  np.zeros(4, np.int32), (1, 1), (1, 1, 1, 1), (1, 1), 1, 8, 8, 0.1,
                  random_output(rng, 4, "int8"))
    with pytest.raises(CompileError, match="layer huge: the weights of one chunk of output "
                                           "lanes \\(1152 rows\\) do not fit the data memory "
                                           "of accelerator 'tiny'"):
        compile_layers([huge], tiny)


def test_weights_of_all_layers_not_fitting_together_are_streamed(tiny):
    rng = np.random.default_rng(6)
    layers = [Conv2d(f"c{i}", (16, 6, 6), (16, 6, 6), random_weights(rng, (16, 16, 3, 3), 8),
                     rng.integers(-500, 500, 16).astype(np.int32), (1, 1), (1, 1, 1, 1), (1, 1),
                     1, 8, 8, 0.1, random_output(rng, 16, "int8")) for i in range(2)]
    compiled = check(layers, tiny, rng, images=1)  # cycles and counters exact, DMA included
    assert compiled.offchip  # the streamed layers' constants
    streamed = [b for b in compiled.layers.values()
                if dict(e for block in b.blocks for e in block.events).get("offchip_read_bits")]
    assert streamed and all(dict(e for block in b.blocks for e in block.events)
                            ["dma_stall_cycles"] > 0 for b in streamed)


def random_depthwise(rng, name, c, w_bits, a_bits, stride=1, kind="int8", hw=(7, 9)):
    k = int(rng.choice([1, 3, 5]))
    pad = (k // 2,) * 4
    h, w = hw
    oh, ow = (h + 2 * (k // 2) - k) // stride + 1, (w + 2 * (k // 2) - k) // stride + 1
    return Conv2d(name, (c, h, w), (c, oh, ow), random_weights(rng, (c, 1, k, k), w_bits),
                  rng.integers(-300, 300, c).astype(np.int32), (stride, stride), pad, (1, 1), c,
                  w_bits, a_bits, 0.1, random_output(rng, c, kind))


@pytest.mark.parametrize("config_name", ["tiny", "default"])
@pytest.mark.parametrize("w_bits,a_bits", [(8, 8), (2, 8), (2, 2), (1, 1), (8, 1)])
def test_depthwise_runs_element_wise(config_name, w_bits, a_bits):
    """Depthwise convolutions of 3..300 channels, strides 1 and 2, every output kind: the
    element-wise form, bit-exact, W/(bits k) positions per trigger for narrow ones."""
    from hw.config import load_accel_config
    config = load_accel_config(config_name)
    rng = np.random.default_rng(w_bits * 7 + a_bits)
    channels = [3, 8, 24] + ([64, 300] if config_name == "default" else [])
    kinds = ["int8", "binary", "ternary"] + (["int32"] if config_name == "default" else [])
    layers = [random_depthwise(rng, f"dw{c}_{s}", c, w_bits, a_bits, s, str(rng.choice(kinds)))
              for c in channels for s in (1, 2)]
    compiled = check(layers, config, rng, images=1)
    for layer in layers:
        b = compiled.layers[layer.name]
        assert b.tiling["positions_per_trigger"] >= 1 and b.macs == layer.weight.size * \
            layer.out_shape[1] * layer.out_shape[2]
    if config_name == "default":  # 8 channels: many positions per trigger
        assert compiled.layers["dw8_1"].tiling["positions_per_trigger"] >= 16


def test_stem_reading_the_input_takes_patches():
    """A 10 x 4 stride-2 stem on one channel (TF 'same' padding) and a 3 x 3 one on three
    channels, as network inputs: im2col packs the taps into the words, bit-exact."""
    from hw.config import load_accel_config
    config = load_accel_config("default")
    rng = np.random.default_rng(11)
    layers = [
        Conv2d("kws", (1, 49, 10), (64, 25, 5), random_weights(rng, (64, 1, 10, 4), 8),
               rng.integers(-500, 500, 64).astype(np.int32), (2, 2), (4, 1, 5, 1), (1, 1), 1,
               8, 8, 0.1, random_output(rng, 64, "int8")),
        Conv2d("rgb", (3, 16, 16), (16, 16, 16), random_weights(rng, (16, 3, 3, 3), 8),
               rng.integers(-500, 500, 16).astype(np.int32), (1, 1), (1, 1, 1, 1), (1, 1), 1,
               8, 8, 0.1, random_output(rng, 16, "int8")),
        Conv2d("bin", (3, 9, 9), (40, 5, 5), random_weights(rng, (40, 3, 3, 3), 1),
               rng.integers(-50, 50, 40).astype(np.int32), (2, 2), (1, 1, 1, 1), (1, 1), 1,
               1, 1, 0.1, random_output(rng, 40, "binary")),
    ]
    compiled = check(layers, config, rng, images=1,
                     host_inputs=frozenset({"kws", "rgb", "bin"}))
    for name in ("kws", "rgb", "bin"):
        assert compiled.layers[name].tiling["im2col"]
    kws = compiled.layers["kws"]
    assert kws.macs / (kws.cycles * config.lanes) > 0.8


@pytest.mark.parametrize("w_bits,a_bits", [(8, 8), (2, 2), (1, 1), (1, 8)])
def test_dense_wide_and_narrow_at_batch_one(w_bits, a_bits):
    """Dense layers 640 -> 128, 128 -> 8, 8 -> 128, 128 -> 1100 (more lanes than the
    accumulators: two passes) and a 10-way int32 classifier."""
    from hw.config import load_accel_config
    config = load_accel_config("default")
    rng = np.random.default_rng(w_bits + 3 * a_bits)
    shapes = [(640, 128, "int8"), (128, 8, "ternary"), (8, 128, "binary"),
              (128, 1100, "int8"), (64, 10, "int32")]
    layers = [Dense(f"fc{i}", (k,), o, random_weights(rng, (o, k), w_bits),
                    rng.integers(-900, 900, o).astype(np.int32), w_bits, a_bits, 0.1,
                    random_output(rng, o, kind)) for i, (k, o, kind) in enumerate(shapes)]
    compiled = check(layers, config, rng, images=1)
    assert compiled.layers["fc3"].tiling["passes"] == 2
    if w_bits == a_bits == 8:
        fc0 = compiled.layers["fc0"]
        assert fc0.macs / (fc0.cycles * config.lanes) > 0.9


def test_affine_layers_per_channel_with_negative_scales(tiny):
    from compiler.intsem import Requant
    rng = np.random.default_rng(4)
    layers = []
    for i, (c, h, w) in enumerate([(5, 3, 4), (16, 2, 2), (12, 1, 1)]):
        rq = Requant.from_scale(rng.uniform(0.01, 2.0, c))
        sign = rng.choice([-1, 1], c)
        layers.append(Affine(f"aff{i}", (c, h, w), rng.integers(-300, 300, c).astype(np.int32),
                             0.1, Output("int8", np.full(c, 0.1),
                                         requant=Requant(rq.multiplier * sign, rq.shift,
                                                         int(rng.choice([-128, 0])), 127))))
    check(layers, tiny, rng, images=2)


def test_bias_past_int32_saturates_with_a_warning():
    from compiler.errors import CompileWarning
    from compiler.intsem import quantize_bias
    with pytest.warns(CompileWarning, match="layer fc: bias of 1 channel"):
        q = quantize_bias(np.array([1.0, 1e6]), 1e-6, np.array([1e-3, 1e-3]), "fc")
    assert q.tolist() == [1_000_000_000, 2**31 - 1]


@pytest.mark.slow
def test_weights_past_the_data_memory_stream_in_segments():
    """784-300-100-10 with an 8-bit first layer (its weights alone nearly fill the memory: the
    small layers are streamed), a 2048-1024-1024-10 MLP (12x the memory: split by input words,
    each segment adding to the same accumulators) and a 3x3 conv 64 -> 512 (split by output
    groups): bit-exact, the DMA's transfers and waits in the cycles, which the compiler knows
    exactly."""
    from hw.config import load_accel_config
    config = load_accel_config("default")
    rng = np.random.default_rng(21)

    def dense(name, k, o, kind="int8"):
        return Dense(name, (k,), o, random_weights(rng, (o, k), 8),
                     rng.integers(-900, 900, o).astype(np.int32), 8, 8, 0.1,
                     random_output(rng, o, kind))

    mlp = check([dense("fc1", 784, 300), dense("fc2", 300, 100), dense("fc3", 100, 10, "int32")],
                config, rng, images=1)
    streamed = [b for b in mlp.layers.values()  # the fewest bytes that make the rest fit
                if any(dict(blk.events).get("offchip_read_bits") for blk in b.blocks)]
    assert streamed and "fc1" not in [b.layer.name for b in streamed]
    big = check([dense("a", 2048, 1024), dense("b", 1024, 1024), dense("c", 1024, 10, "int32")],
                config, rng, images=1)
    assert sum(len(d) for _, d in big.offchip) >= 4 * config.dmem_bytes
    assert big.layers["a"].tiling["weight_segments"] > 1  # by input words
    conv = Conv2d("wide", (64, 8, 8), (512, 8, 8), random_weights(rng, (512, 64, 3, 3), 8),
                  rng.integers(-500, 500, 512).astype(np.int32), (1, 1), (1, 1, 1, 1), (1, 1), 1,
                  8, 8, 0.1, random_output(rng, 512, "int8"))
    compiled = check([conv], config, rng, images=1)
    b = compiled.layers["wide"]
    assert b.tiling["weight_segments"] > 1
    stalls = sum(blk.stall * blk.count for blk in b.blocks)
    assert stalls < 0.05 * b.cycles  # compute dominates: the loads hide behind it


def n_instructions(compiled) -> int:
    return sum(1 for line in compiled.listing.splitlines()
               if line and not line.endswith(":") and not line.startswith("#"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_compact_code_loops_and_stays_exact(tiny, seed):
    """Compiled compact (what a program past the instruction memory gets), the same random
    layers loop over their segments and chunks: still bit-exact, the estimate still the RTL's
    cycles and counters, and the code no larger."""
    rng = np.random.default_rng(100 + seed)
    for i in range(4):
        layer = random_conv(rng, f"conv{i}")
        full = compile_layers([layer], tiny)
        small = check([layer], tiny, rng, images=1, compact=True)
        assert n_instructions(small) <= n_instructions(full)


@pytest.mark.parametrize("channels,groups,stride,bits", [
    (144, 144, 1, 8), (200, 200, 2, 8), (144, 144, 1, 2), (96, 4, 1, 8), (160, 1, 1, 8)])
def test_compact_code_on_channels_past_one_chunk(channels, groups, stride, bits):
    """Depthwise (element-wise: each chunk reads its own channels, so its chunks cannot share
    one loop body), grouped and full convolutions wider than a trigger's lanes, compact: exact
    on the RTL (the depthwise case was a wrong answer in EfficientNet-B0)."""
    from hw.config import load_accel_config
    config = load_accel_config("default")
    rng = np.random.default_rng(channels + groups)
    conv = Conv2d("c", (channels, 8, 8), (channels, 8 // stride, 8 // stride),
                  random_weights(rng, (channels, channels // groups, 3, 3), bits),
                  rng.integers(-500, 500, channels).astype(np.int32), (stride, stride),
                  (1, 1, 1, 1), (1, 1), groups, bits, 8, 0.1,
                  random_output(rng, channels, "int8"))
    full = compile_layers([conv], config)
    small = check([conv], config, rng, images=1, compact=True)
    assert n_instructions(small) <= n_instructions(full)


@pytest.mark.parametrize("channels,out,size,kernel", [(256, 64, 4, 3), (128, 96, 2, 3),
                                                     (512, 40, 1, 1)])
def test_compact_code_loops_over_input_words(channels, out, size, kernel):
    """Wide reductions (ResNet-18's late layers: 9 taps x 64 words a chunk) loop over their
    input words, U at a time, the weight rows and the window moved on each turn: code grows
    with the taps, not the channels; exact on the RTL, the estimate its cycles."""
    from hw.config import load_accel_config
    config = load_accel_config("default")
    rng = np.random.default_rng(channels + out)
    pad = kernel // 2
    conv = Conv2d("c", (channels, size, size), (out, size, size),
                  random_weights(rng, (out, channels, kernel, kernel), 8),
                  rng.integers(-500, 500, out).astype(np.int32), (1, 1), (pad,) * 4, (1, 1), 1,
                  8, 8, 0.1, random_output(rng, out, "int8"))
    full = compile_layers([conv], config)
    small = check([conv], config, rng, images=2, compact=True)
    assert "_w:" in small.listing and "_w:" not in full.listing
    assert n_instructions(small) < 0.65 * n_instructions(full)
    assert small.layers["c"].cycles < 1.2 * full.layers["c"].cycles


@pytest.mark.parametrize("channels,groups,size", [(160, 10, 2), (128, 8, 4)])
def test_compact_grouped_convolutions_loop_over_chunks(channels, groups, size):
    """A grouped convolution (RegNet's, 16 channels a group) reads other input words in each
    chunk: compact, its chunks still share one loop body, the window moved on by a chunk's
    words each turn; exact on the RTL, the code a fraction."""
    from hw.config import load_accel_config
    config = load_accel_config("default")
    rng = np.random.default_rng(channels + groups)
    conv = Conv2d("g", (channels, size, size), (channels, size, size),
                  random_weights(rng, (channels, channels // groups, 3, 3), 8),
                  rng.integers(-500, 500, channels).astype(np.int32), (1, 1), (1, 1, 1, 1),
                  (1, 1), groups, 8, 8, 0.1, random_output(rng, channels, "int8"))
    full = compile_layers([conv], config)
    small = check([conv], config, rng, images=2, compact=True)
    assert "_c:" in small.listing
    assert n_instructions(small) < 0.75 * n_instructions(full)


@pytest.mark.slow
def test_streamed_layers_compact_are_a_fraction_of_the_code():
    """A 3x3 conv 64 -> 512 whose weights stream in segments, and a dense layer split by input
    words: compact code loops over the segments (a fraction of the instructions) and stays
    exact, DMA waits and all."""
    from hw.config import load_accel_config
    config = load_accel_config("default")
    rng = np.random.default_rng(22)
    conv = Conv2d("wide", (64, 8, 8), (512, 8, 8), random_weights(rng, (512, 64, 3, 3), 8),
                  rng.integers(-500, 500, 512).astype(np.int32), (1, 1), (1, 1, 1, 1), (1, 1), 1,
                  8, 8, 0.1, random_output(rng, 512, "int8"))
    fc = Dense("fc", (2048,), 1024, random_weights(rng, (1024, 2048), 8),
               rng.integers(-900, 900, 1024).astype(np.int32), 8, 8, 0.1,
               random_output(rng, 1024, "int8"))
    for layer in (conv, fc):
        full = compile_layers([layer], config)
        small = check([layer], config, rng, images=1, compact=True)
        assert small.layers[layer.name].tiling["weight_segments"] > 1
        assert n_instructions(small) < 0.5 * n_instructions(full), layer.name
        assert small.layers[layer.name].cycles < 1.2 * full.layers[layer.name].cycles
