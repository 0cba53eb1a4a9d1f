"""Whole networks in one accelerator run: the layers hand over among themselves (the host writes
the input into the off-chip memory and reads results, nothing between layers), bit-exact, every
layer's counters read at its boundary equal to the estimator's; runs split only where the host
must compute."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from compiler import codegen
from compiler.artifacts import load, save
from compiler.estimate import estimate
from compiler.plans.handover import plan_copy
from compiler.layout import Layout
from compiler.pipeline import compile_model
from compiler.zoo import ZOO, build
from hw.config import load_accel_config

pytestmark = pytest.mark.rtl


def _compiled(name: str, config: str = "default"):
    entry = next(e for e in ZOO if e.name == name)
    cal = np.random.default_rng(0).standard_normal((8, *entry.input_shape)).astype(np.float32)
    return entry, compile_model(build(entry), torch.from_numpy(cal[:1]),
                                load_accel_config(config), entry.quant, cal)


class _Spy:
    """Logs what the host does to a machine: writes, starts, runs."""

    def __init__(self, machine):
        self.log: list[str] = []
        for name in ("write_dmem", "write_offchip", "reset", "set_pc", "run", "advance"):
            method = getattr(machine, name)

            def logged(*args, _name=name, _method=method, **kw):
                self.log.append(_name)
                return _method(*args, **kw)
            setattr(machine, name, logged)


@pytest.mark.parametrize("engine", ["golden", "rtl"])
@pytest.mark.parametrize("name", ["resnet8", "mobilenet"])
def test_one_run_per_inference_and_no_host_write_between_layers(name, engine):
    entry, net = _compiled(name)
    assert [len(s.layers) for s in net.program.segments] == [len(net.layers)], \
        net.placement_report()
    rng = np.random.default_rng(1)
    est = estimate(net.program)
    with net.runner(engine) as acc, net.runner("reference") as ref:
        spy = _Spy(acc.backend.machine)
        for _ in range(2):
            spy.log.clear()
            x = rng.standard_normal((1, *entry.input_shape)).astype(np.float32)
            np.testing.assert_array_equal(acc(x), ref(x))
            for layer in net.layers:
                np.testing.assert_array_equal(acc.int_outputs[layer.name],
                                              ref.int_outputs[layer.name], err_msg=layer.name)
            start = spy.log.index("set_pc")
            assert spy.log.count("set_pc") == 1 and spy.log.count("reset") == 1
            # the input goes to the off-chip memory (the first layer's code loads it by DMA)
            assert "write_offchip" in spy.log and "write_dmem" not in spy.log, spy.log
            after = spy.log[start:]
            assert "write_dmem" not in after and "write_offchip" not in after, spy.log
            assert after.count("advance") == len(net.layers) - 1 and after[-1] == "run"
            for run in acc.layer_runs:  # each layer's counters, read at its boundary
                assert run.counters == est[run.name], run.name
            assert acc.cycles == sum(b.cycles for b in net.program.layers.values())
            # the result leaves by DMA in the rows holding its values, not its grid's slack
            last = net.program.layers[net.program.segments[-1].layers[-1]]
            width = net.config.vector_width
            stored = -(-last.output.held_bytes * 8 // width) * width
            assert acc.layer_runs[-1].counters["offchip_write_bits"] == stored
            assert stored == width < last.output.size * 8  # 10 int32 logits: one row of four


def test_hand_over_cycles_are_counted_in_the_producer():
    _, net = _compiled("vgg")
    hand = {n: b.tiling["handover_cycles"] for n, b in net.program.layers.items()}
    assert sum(hand.values()) > 0
    last = net.program.segments[-1].layers[-1]
    assert hand[last] == 0  # its output goes to the host


def test_runs_split_where_the_host_requantizes_and_the_report_says_why():
    """Binary values read as bytes (an 8-bit-weight layer's +-1) are the host's to widen."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3),
                                torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 4)).eval()
    cal = torch.randn(4, 1, 8, 8)
    net = compile_model(model, cal[:1], load_accel_config("default"),
                        {"layers": {"1": {"weights": 8, "activations": 1}}}, cal.numpy())
    segments = net.program.segments
    assert 1 < len(segments) < len(net.layers)
    report = net.placement_report()
    assert f"accelerator runs per inference: {len(segments)}" in report
    assert "the host requantizes" in report
    # and a per-layer compilation (no dataflow) keeps one run per layer
    from compiler.codegen import compile_layers
    alone = compile_layers(net.layers, net.config)
    assert [s.layers for s in alone.segments] == [(n,) for n in alone.layers]


def test_runs_survive_saving_and_loading(tmp_path):
    entry, net = _compiled("lenet")
    save(net, tmp_path / "c")
    again = load(tmp_path / "c")
    assert again.program.segments == net.program.segments
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((1, *entry.input_shape)).astype(np.float32)
    with again.runner("golden") as a, net.runner("reference") as r:
        np.testing.assert_array_equal(a(xs), r(xs))


@pytest.mark.parametrize("seed", range(32))
def test_copies_between_random_layouts_match_their_element_maps(seed):
    """The planned copy (loops, pattern, padding runs), replayed in numpy on a byte array,
    moves every element where the consumer's layout wants it and fills its padding (a
    producer's padding positions and 8- and 2-bit padding channels hold garbage)."""
    rng = np.random.default_rng(seed)
    bits = int(rng.choice([8, 2, 1]))
    c = int(rng.choice([3, 4, 8, 16, 24, 32, 48]))
    h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    per = 32 // bits

    wide = rng.random() < 0.4  # positions of a whole data row: the vector unit copies them

    def slot(extra):
        return 1024 if wide else 32 * (-(-c // per) + extra)

    pt, pl = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    src = Layout(128 * int(rng.integers(0, 4)), (c, h, w), h, w + int(rng.integers(0, 3)), (0, 0),
                 slot(int(rng.integers(0, 2))), bits, 0)
    dst = Layout(32768 + 128 * int(rng.integers(0, 4)), (c, h + 2 * pt, w + 2 * pl), h + 2 * pt,
                 w + 2 * pl + int(rng.integers(0, 2)), (0, 0), slot(int(rng.integers(0, 2))), bits,
                 -1 if bits == 1 else int(rng.integers(0, 2)))
    copy = plan_copy(src, dst, (c, h, w), (pt, pl), 2047, row=128)
    if wide and copy is not None and bits != 1:
        assert copy.unit == 128, copy
    if copy is None:
        assert bits != 8, "an int8 tensor always has a copy"
        return
    lo = -128 if bits == 8 else -1
    hi = 1 if bits < 8 else 127
    q = rng.integers(lo, hi + 1, (c, h, w))
    if bits == 1:
        q = np.where(q >= 0, 1, -1)
    mem = rng.integers(0, 256, 65536).astype(np.uint8)  # garbage everywhere
    enc = src.encode(q)  # the producer's padding channels and positions: garbage
    bits_of = np.unpackbits(enc, bitorder="little")
    keep = np.zeros(bits_of.size, bool)
    keep[(src.bit_offsets()[..., None] + np.arange(bits)).ravel()] = True
    bits_of[~keep] = rng.integers(0, 2, (~keep).sum())
    if bits == 1:  # a producer's binary slots hold -1 (bit 0) past the channels
        first = src.bit_offsets()[0].ravel()
        for slot_bit in range(c, src.pos_bits):
            bits_of[first + slot_bit] = 0
    mem[src.addr:src.addr + src.size] = np.packbits(bits_of, bitorder="little")
    for addr, words, count, stride in copy.fill:
        for k in range(count):
            for j in range(words):
                a = addr + k * stride + 4 * j
                mem[a:a + 4] = np.frombuffer(np.uint32(copy.fill_word).tobytes(), np.uint8)
    steps = [()]
    for lp in copy.loops:
        steps = [s + (i,) for s in steps for i in range(lp.count)]
    for s in steps:
        so = copy.src + sum(i * lp.src for i, lp in zip(s, copy.loops))
        do = copy.dst + sum(i * lp.dst for i, lp in zip(s, copy.loops))
        for a, b in copy.pattern:
            mem[do + b:do + b + copy.unit] = mem[so + a:so + a + copy.unit].copy()
    got = replace(dst, shape=(c, dst.rows, dst.cols)).decode(mem[dst.addr:dst.addr + dst.size])
    np.testing.assert_array_equal(got[:, pt:pt + h, pl:pl + w], q)
    if bits == 1:  # binary: padding channels and positions exactly -1
        full = Layout(dst.addr, (dst.pos_bits, dst.rows, dst.cols), dst.rows, dst.cols, (0, 0),
                      dst.pos_bits, 1, dst.fill)
        every = full.decode(mem[dst.addr:dst.addr + dst.size])
        expect = np.full(every.shape, -1)
        expect[:c, pt:pt + h, pl:pl + w] = q
        np.testing.assert_array_equal(every, expect)
    else:  # padding positions hold the fill
        mask = np.ones((dst.rows, dst.cols), bool)
        mask[pt:pt + h, pl:pl + w] = False
        np.testing.assert_array_equal(got[:, mask], np.full((c, mask.sum()), dst.fill))


@pytest.mark.parametrize("engine", ["golden", "rtl"])
def test_row_tiles_loop_in_the_layers_own_code(engine):
    """Activations larger than the data memory: the layer loops over its row tiles itself,
    each window loaded from the off-chip memory, each tile's rows stored back; one run."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(32, 16, 3, stride=2, padding=1)).eval()
    shape = (3, 96, 96)
    cal = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    net = compile_model(model, torch.from_numpy(cal[:1]), load_accel_config("default"), None, cal)
    tiled = [b for b in net.program.layers.values() if b.tiles > 1]
    assert tiled and all(b.row_tiling.in_code and b.host_runs == 1 for b in tiled)
    est = estimate(net.program)
    with net.runner(engine) as acc, net.runner("reference") as ref:
        spy = _Spy(acc.backend.machine)
        x = cal[1:]
        np.testing.assert_array_equal(acc(x), ref(x))
        for name, y in ref.int_outputs.items():
            np.testing.assert_array_equal(acc.int_outputs[name], y, err_msg=name)
        assert spy.log.count("set_pc") == len(net.program.segments)  # one run per segment
        assert "write_dmem" not in spy.log
        for run in acc.layer_runs:
            assert run.counters == est[run.name], run.name
        assert any(run.counters["offchip_read_bits"] for run in acc.layer_runs)


@pytest.mark.parametrize("engine", ["golden", "rtl"])
def test_hand_over_of_whole_rows_goes_through_the_vector_unit(engine):
    """Positions of a whole data row (128 channels on `default`): the producers copy rows with
    aset / rq (bypass), under a cycle per word, bit-exact, counted exactly."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 128, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(128, 128, 3, padding=1, groups=128), torch.nn.ReLU(),
        torch.nn.Conv2d(128, 8, 3, padding=1)).eval()
    cal = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    net = compile_model(model, torch.from_numpy(cal[:1]), load_accel_config("default"), None, cal)
    assert len(net.program.segments) == 1, net.placement_report()
    sections = {s.split(":")[0]: s for s in net.program.listing.split("# ")[1:]}
    for name in ("0", "2"):
        b = net.program.layers[name]
        words = 8 * 8 * 128 // 4  # what the LSU would move at two cycles a word
        assert "vmac.aset" in sections[name] and 0 < b.tiling["handover_cycles"] < words / 2
    est = estimate(net.program)
    with net.runner(engine) as acc, net.runner("reference") as ref:
        for x in cal[:2]:
            np.testing.assert_array_equal(acc(x[None]), ref(x[None]))
            for run in acc.layer_runs:
                assert run.counters == est[run.name], run.name


@pytest.mark.parametrize("engine", ["golden", "rtl"])
def test_pools_read_narrow_convolutions_in_place_and_pack_positions(engine):
    """LeNet on `default`: 2x2 max pools after 6- and 16-channel convolutions read the
    convolutions' rows where they lie (no hand-over) and combine 16 / 8 positions a trigger
    (they took a row per position, and a copy of every position into that grid: 52% of the
    network's cycles)."""
    entry, net = _compiled("lenet")
    for conv, pool, per_row in (("conv1", "max_pool_0", 16), ("conv2", "max_pool_1", 8)):
        assert net.program.layers[conv].tiling["handover_cycles"] == 0
        assert net.program.layers[pool].tiling["positions_per_row"] == per_row
    xs = np.random.default_rng(1).standard_normal((2, *entry.input_shape)).astype(np.float32)
    _runs_exactly(net, engine, xs)


def _runs_exactly(net, engine: str, xs: np.ndarray) -> None:
    """Every layer's output equals the reference's and its counters the estimator's."""
    est = estimate(net.program)
    with net.runner(engine) as acc, net.runner("reference") as ref:
        for x in xs:
            np.testing.assert_array_equal(acc(x[None]), ref(x[None]))
            for name, y in ref.int_outputs.items():
                np.testing.assert_array_equal(acc.int_outputs[name], y, err_msg=name)
            for run in acc.layer_runs:
                assert run.counters == est[run.name], run.name


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["golden", "rtl"])
@pytest.mark.parametrize("config, channels, spec", [
    ("default", 64, None), ("default", 16, {"layers": {"[24]": {"weights": 2, "activations": 2}}}),
    ("default", 8, {"layers": {"[24]": {"weights": 2, "activations": 2}}}),
    ("tiny", 16, {"layers": {"[24]": {"weights": 2, "activations": 2}}})])
def test_hand_over_by_parts_of_rows_into_padded_grids(engine, config, channels, spec,
                                                      monkeypatch):
    """Positions smaller than a data row (64 int8, 16 or 8 ternary channels) into zero-padded
    grids of odd width: the consumers' grids are laid out so that the vector unit copies rows
    and parts of rows, the padding zeroed from the zero row; far under the LSU's cycles,
    bit-exact, counted exactly. 8 ternary channels fill half a word: their producers write
    positions of whole words (their consumers read those) instead of being copied byte by
    byte. On `tiny` a data row is 8 bytes, a part 2."""
    torch.manual_seed(0)
    c = channels
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, c, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(c, c, 3, padding=1, groups=c), torch.nn.ReLU(),
        torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(c, 8, 3, padding=1)).eval()
    shape = (3, 9, 7) if config == "default" else (3, 7, 5)  # tiny: 4 KiB
    cal = np.random.default_rng(0).standard_normal((4, *shape)).astype(np.float32)
    config = load_accel_config(config)
    net = compile_model(model, torch.from_numpy(cal[:1]), config, spec, cal)
    assert len(net.program.segments) == 1, net.placement_report()
    sections = {s.split(":")[0]: s for s in net.program.listing.split("# ")[1:]}
    with monkeypatch.context() as m:  # the same hand-overs by the LSU, for comparison
        m.setattr(codegen, "plan_lanes", lambda *args, **kw: None)
        lsu = compile_model(model, torch.from_numpy(cal[:1]), config, spec, cal)
    for name in ("0", "2", "4"):
        cycles = [n.program.layers[name].tiling["handover_cycles"] for n in (net, lsu)]
        assert 0 < cycles[0] < cycles[1] and "vmac.aset" in sections[name], (name, cycles)
        assert 3 * cycles[0] < cycles[1] or config.name == "tiny", (name, cycles)
        assert net.program.layers[name].output.pos_bits % 32 == 0
    _runs_exactly(net, engine, cal[:2])


@pytest.mark.parametrize("engine", ["golden", "rtl"])
@pytest.mark.parametrize("spec", [None, {"layers": {"[25]": {"weights": 2, "activations": 2}}}])
def test_dense_reads_its_flattened_input_where_its_producer_left_it(engine, spec):
    """A flatten into a dense layer: the dense reads the convolution's output grid in place
    (its weights laid out over the grid's positions and padding channels, those weighing 0),
    so nothing is handed over; bit-exact, counted exactly."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 24, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(24, 24, 3, stride=2), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(24 * 5 * 5, 10)).eval()
    cal = np.random.default_rng(0).standard_normal((4, 1, 12, 12)).astype(np.float32)
    net = compile_model(model, torch.from_numpy(cal[:1]), load_accel_config("default"), spec, cal)
    assert len(net.program.segments) == 1, net.placement_report()
    conv, dense = net.program.layers["2"], net.program.layers["5"]
    assert conv.tiling["handover_cycles"] == 0 and dense.inputs[0].addr == conv.output.addr
    assert dense.inputs[0].shape == (24, 5, 5)
    _runs_exactly(net, engine, cal[:2])


class _Fire(torch.nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = torch.nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = torch.nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = torch.nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(x)), torch.relu(self.expand3x3(x))], 1)


class _FireNet(torch.nn.Module):
    """SqueezeNet's fire modules on a 1x1 map: 320 kB of weights (past the data memory)."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 128, 3, padding=1)
        self.fires = torch.nn.Sequential(_Fire(128, 32, 128), _Fire(256, 48, 192),
                                         _Fire(384, 48, 192), _Fire(384, 64, 256))
        self.fc = torch.nn.Linear(512, 10)

    def forward(self, x):
        return self.fc(self.fires(torch.relu(self.stem(x))).flatten(1))


@pytest.mark.parametrize("engine", ["golden", "rtl"])
def test_an_output_kept_for_a_concatenation_survives_the_next_layers_constants(engine):
    """expand1x1's output waits for the concatenation while expand3x3 loads its streamed
    constants: the place it is kept in must not be where they land (it was: a wrong answer
    from fires.1 on, found on torchvision's squeezenet1_1)."""
    torch.manual_seed(0)
    cal = torch.randn(8, 3, 1, 1)
    net = compile_model(_FireNet().eval(), cal[:1], load_accel_config("default"), None,
                        cal.numpy())
    assert sum(len(d) for _, d in net.program.offchip) > net.config.dmem_bytes
    with net.runner(engine) as acc, net.runner("reference") as ref:
        for x in net.random_inputs(2, 5):
            np.testing.assert_array_equal(acc(x[None]), ref(x[None]))
            for layer in net.layers:
                np.testing.assert_array_equal(acc.int_outputs[layer.name],
                                              ref.int_outputs[layer.name], err_msg=layer.name)
