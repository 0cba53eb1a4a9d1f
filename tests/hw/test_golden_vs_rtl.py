"""The golden model and the RTL agree exactly: final registers, guards, pc, memory, counters."""

import random

import numpy as np
import pytest
import yaml

from hw.asm import assemble
from hw.errors import SimulationError
from hw.fuzz import random_program
from hw.config import CONFIG_DIR, parse_accel_config
from hw.fuzz import shrink
from hw.golden import GoldenModel
from hw.sim import RtlSimulator
from hw.units import DOT_PRECISIONS, EW_PRECISIONS, PRECISIONS

pytestmark = pytest.mark.rtl
M32 = 0xFFFFFFFF


def run_both(config, rtl, text, dmem, offchip=None):
    """Both engines from the same memories (off-chip: given, else zeros); cycles, final state
    and both memories must agree."""
    offchip = np.zeros(config.offchip.bytes, np.uint8) if offchip is None else offchip
    outcomes = []
    for machine in (GoldenModel(config), rtl):
        prog = assemble(text, machine.encoding)
        machine.write_dmem(0, dmem)
        machine.write_offchip(0, offchip)
        machine.reset()
        machine.load_program(prog)
        result = machine.run(max_cycles=100_000)
        outcomes.append((result.cycles, machine.state(),
                         machine.read_dmem(0, config.dmem_bytes).tobytes(),
                         machine.read_offchip(0, config.offchip.bytes).tobytes()))
    golden, rtl_out = outcomes
    assert rtl_out[0] == golden[0], "cycle counts differ"
    assert rtl_out[1] == golden[1], "final state differs"
    assert rtl_out[2] == golden[2], "data memory differs"
    assert rtl_out[3] == golden[3], "off-chip memory differs"
    return golden


# Independent numpy definitions of the ALU, to check the golden model itself.
def _s(x):
    return x.astype(np.uint32).view(np.int32).astype(np.int64)


ALU_REFERENCE = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "and": lambda a, b: a & b,
    "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b, "shl": lambda a, b: a << (b & 31),
    "shr": lambda a, b: a >> (b & 31), "sra": lambda a, b: _s(a) >> (b & 31),
    "mul": lambda a, b: _s(a) * _s(b), "mulhi": lambda a, b: (_s(a) * _s(b)) >> 32,
    "mulhr": lambda a, b: (_s(a) * _s(b) + 2**31) >> 32,
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: _s(a) < _s(b),
    "ltu": lambda a, b: a < b, "min": lambda a, b: np.minimum(_s(a), _s(b)),
    "max": lambda a, b: np.maximum(_s(a), _s(b)),
}


@pytest.mark.parametrize("op", sorted(ALU_REFERENCE))
def test_alu_op_on_random_words(tiny, rtl_tiny, op):
    rng = np.random.default_rng(abs(hash(op)) % 2**32)
    n = 24
    words = rng.integers(0, 2**32, 2 * n, dtype=np.uint64)
    words[:6] = [0, M32, 0x80000000, 0x7FFFFFFF, 1, 31]  # edge values
    dmem = np.zeros(tiny.dmem_bytes, np.uint8)
    dmem[:8 * n] = words.astype(np.uint32).view(np.uint8)
    # tiny: LSU latency 2, ALU latency 1.
    lines = []
    for i in range(n):
        lines += [f"{8 * i} -> lsu.ldw", f"{8 * i + 4} -> lsu.ldw", "lsu.res -> alu.in1",
                  f"lsu.res -> alu.{op}", f"alu.res -> lsu.data, {1024 + 4 * i} -> lsu.stw"]
    lines.append("0 -> ctrl.halt")
    golden = run_both(tiny, rtl_tiny, "\n".join(lines), dmem)
    got = np.frombuffer(golden[2][1024:1024 + 4 * n], np.uint32)
    a, b = words[0::2].astype(np.int64), words[1::2].astype(np.int64)
    want = (ALU_REFERENCE[op](a, b).astype(np.int64) & M32).astype(np.uint32)
    np.testing.assert_array_equal(got, want)


def pack_weights(w: np.ndarray, bits: int) -> np.ndarray:
    """Rows of lane weights -> packed bytes (binary: 1 = +1; ternary: bit0 nonzero, bit1
    negative)."""
    if bits == 8:
        return w.astype(np.int8).view(np.uint8)
    codes = (w > 0).astype(np.uint8) if bits == 1 else ((w != 0) | ((w < 0) << 1)).astype(np.uint8)
    fields = np.unpackbits(codes[..., None], axis=-1, bitorder="little")[..., :bits]
    return np.packbits(fields.reshape(len(w), -1), axis=-1, bitorder="little")


@pytest.mark.parametrize("precision", ["int8", "ternary", "binary"])
def test_vmac_against_numpy(tiny, rtl_tiny, precision):
    bits, acc_op, start_op = PRECISIONS[precision]
    rng = np.random.default_rng(bits)
    lanes, row = tiny.lanes_at(bits), tiny.vector_width // 8
    values = {8: np.arange(-128, 128), 2: np.array([-1, 0, 1]), 1: np.array([-1, 1])}[bits]
    weights = rng.choice(values, (6, lanes))
    xs = [-128, 127, -1, 3, 100, -77]
    dmem = np.zeros(tiny.dmem_bytes, np.uint8)
    dmem[row * 10:row * 16] = pack_weights(weights, bits).ravel()
    lines = [f"{xs[0]} -> vmac.x, 10 -> vmac.{start_op}"]
    lines += [f"{x} -> vmac.x, {10 + k} -> vmac.{acc_op}" for k, x in enumerate(xs[1:], 1)]
    for lane in range(lanes):  # read each accumulator and store it
        lines += [f"{lane} -> vmac.get", f"vmac.res -> lsu.data, {1024 + 4 * lane} -> lsu.stw"]
    lines.append("0 -> ctrl.halt")
    golden = run_both(tiny, rtl_tiny, "\n".join(lines), dmem)
    got = np.frombuffer(golden[2][1024:1024 + 4 * lanes], np.int32)
    np.testing.assert_array_equal(got, np.array(xs) @ weights)
    assert golden[1].counters[f"vmac_mac{bits}"] == len(xs)
    assert golden[1].counters["dmem_read_bits"] == len(xs) * tiny.vector_width


def window_words(dmem: np.ndarray, config, addr: int) -> np.ndarray:
    """The activation window of word address addr: rows R, R + 1 as 2L uint32 words."""
    words_per_row = config.vector_width // 32
    row = addr // words_per_row
    rows = [(row + k) % config.dmem_rows for k in (0, 1)]
    row_bytes = config.vector_width // 8
    data = np.concatenate([dmem[r * row_bytes:(r + 1) * row_bytes] for r in rows])
    return data.view(np.uint32), addr % words_per_row


def unpack(words: np.ndarray, bits: int) -> np.ndarray:
    """Signed values of the packed fields of uint32 words, in order (independent of hw.golden)."""
    raw = np.atleast_1d(np.asarray(words, np.uint32)).view(np.uint8)
    if bits == 8:
        return raw.view(np.int8).astype(np.int64)
    fields = np.unpackbits(raw, bitorder="little").reshape(-1, bits)
    if bits == 1:
        return np.where(fields[:, 0] == 1, 1, -1)
    return fields[:, 0].astype(np.int64) * np.where(fields[:, 1] == 1, -1, 1)


@pytest.mark.parametrize("precision", ["int8", "ternary", "binary"])
def test_vmac_dot_forms_against_numpy(tiny, rtl_tiny, precision):
    """Output lane l reduces one word of the activation window (at word address xb + x, lane
    group l >> lk from word offset group * 2^(vg[7:0] - 1)) against its 32-bit slice of the
    weight row."""
    bits = PRECISIONS[precision][0]
    acc_op, start_op = DOT_PRECISIONS[precision]
    rng = np.random.default_rng(10 + bits)
    per_word, outs, row = 32 // bits, tiny.vector_width // 32, tiny.vector_width // 8
    values = {8: np.arange(-128, 128), 2: np.array([-1, 0, 1]), 1: np.array([-1, 1])}[bits]
    weights = rng.choice(values, (5, outs, per_word))  # trigger, output lane, input
    dmem = rng.integers(0, 256, tiny.dmem_bytes, dtype=np.uint8)
    dmem[row * 10:row * 15] = pack_weights(weights.reshape(5, -1), bits).ravel()
    xb, xs, vg = 1000, [3, 1, 7, 0, 2], (0 << 8) | 2  # one lane per group, groups 2 words apart
    base = 5  # rounded down to a multiple of W/32 lanes
    lines = [f"{base} -> vmac.base, {xb} -> vmac.xb, {vg} -> vmac.vg"]
    for k, x in enumerate(xs):
        lines.append(f"{x} -> vmac.x, {10 + k} -> vmac.{start_op if k == 0 else acc_op}")
    first = base // outs * outs
    for lane in range(outs):
        lines += [f"{first + lane} -> vmac.get",
                  f"vmac.res -> lsu.data, {1024 + 4 * lane} -> lsu.stw"]
    lines.append("0 -> ctrl.halt")
    golden = run_both(tiny, rtl_tiny, "\n".join(lines), dmem)
    want = np.zeros(outs, np.int64)
    for k, x in enumerate(xs):
        win, off = window_words(dmem, tiny, xb + x)
        for lane in range(outs):
            act = unpack(win[(off + lane * 2) % len(win)], bits)
            want[lane] += weights[k, lane] @ act
    got = np.frombuffer(golden[2][1024:1024 + 4 * outs], np.int32)
    np.testing.assert_array_equal(got, want)
    assert golden[1].counters[f"vmac_mac{bits}"] == 5
    assert golden[1].counters["dmem_read_bits"] == 5 * 2 * tiny.vector_width


@pytest.mark.slow
def test_dot_lane_groups_on_a_wide_window():
    """On `default` (L = 32 output lanes): every lane-group size 2^lk with every power-of-two
    group step 2^(shift - 1) (and shift 0, past the window, and lk past the lanes), from a
    window that starts mid-row and wraps, against numpy and on the RTL."""
    from hw.config import load_accel_config
    config = load_accel_config("default")
    L, row = config.vector_width // 32, config.vector_width // 8
    rng = np.random.default_rng(3)
    weights = rng.integers(-128, 128, (L, 4))  # output lane, input byte
    dmem = rng.integers(0, 256, config.dmem_bytes, dtype=np.uint8)
    dmem[row * 4:row * 5] = pack_weights(weights.reshape(1, -1), 8).ravel()
    cases = [(lk, shift) for lk in (0, 1, 2, 3, 5, 7) for shift in (0, 1, 2, 3, 5, 6, 7, 200)]
    xb = 64 * L + 21  # word 21 of row 64: groups run into row 65 and wrap within the window
    lines = [f"0 -> vmac.base, {xb} -> vmac.xb, 0 -> vmac.x"]
    for i, (lk, shift) in enumerate(cases):
        lines.append(f"{(lk << 8) | shift} -> vmac.vg, 4 -> vmac.dmac0")
        for lane in range(L):
            lines += [f"{lane} -> vmac.get",
                      f"vmac.res -> lsu.data, {32768 + 4 * (i * L + lane)} -> lsu.stw"]
    lines.append("0 -> ctrl.halt")
    golden = run_both(config, RtlSimulator(config), "\n".join(lines), dmem)
    win, off = window_words(dmem, config, xb)
    got = np.frombuffer(golden[2][32768:32768 + 4 * L * len(cases)], np.int32).reshape(-1, L)
    for i, (lk, shift) in enumerate(cases):
        step = 0 if shift == 0 else 2 ** (shift - 1)
        want = [weights[lane] @ unpack(win[(off + (lane >> lk) * step) % (2 * L)], 8)
                for lane in range(L)]
        np.testing.assert_array_equal(got[i], want, err_msg=f"lk {lk}, shift {shift}")


@pytest.mark.parametrize("precision", ["int8", "ternary", "binary"])
def test_vmac_elementwise_forms_against_numpy(tiny, rtl_tiny, precision):
    """Lane l multiplies its weight by element l of the window (from word xb + x on, across
    the two rows): depthwise convolutions with channels across lanes; vg plays no part."""
    bits = PRECISIONS[precision][0]
    acc_op, start_op = EW_PRECISIONS[precision]
    rng = np.random.default_rng(20 + bits)
    lanes, row, per_word = tiny.vector_width // bits, tiny.vector_width // 8, 32 // bits
    values = {8: np.arange(-128, 128), 2: np.array([-1, 0, 1]), 1: np.array([-1, 1])}[bits]
    weights = rng.choice(values, (3, lanes))
    dmem = rng.integers(0, 256, tiny.dmem_bytes, dtype=np.uint8)
    dmem[row * 10:row * 13] = pack_weights(weights, bits).ravel()
    xb, xs = 2001, [0, 5, 2]
    lines = [f"{lanes} -> vmac.base, {xb} -> vmac.xb, {(2 << 8) | 3} -> vmac.vg"]
    for k, x in enumerate(xs):
        lines.append(f"{x} -> vmac.x, {10 + k} -> vmac.{start_op if k == 0 else acc_op}")
    first = lanes % tiny.vector_width  # base rounded down to a multiple of the lane count
    for lane in range(lanes):
        lines += [f"{first + lane} -> vmac.get",
                  f"vmac.res -> lsu.data, {1024 + 4 * lane} -> lsu.stw"]
    lines.append("0 -> ctrl.halt")
    golden = run_both(tiny, rtl_tiny, "\n".join(lines), dmem)
    want = np.zeros(lanes, np.int64)
    for k, x in enumerate(xs):
        win, off = window_words(dmem, tiny, xb + x)
        elems = unpack(win, bits)
        for lane in range(lanes):
            want[lane] += weights[k, lane] * elems[(off * per_word + lane) % len(elems)]
    got = np.frombuffer(golden[2][1024:1024 + 4 * lanes], np.int32)
    np.testing.assert_array_equal(got, want)


def test_parameter_rows_and_raw_accumulators(tiny, rtl_tiny):
    """lbias / lmul / lshift load the banks from rows; racc writes W/32 lanes + bias as int32;
    rq then requantizes with the loaded banks."""
    g, words, row = tiny.vector_width // 8, tiny.vector_width // 32, tiny.vector_width // 8
    rng = np.random.default_rng(7)
    bias = rng.integers(-20000, 20000, g)
    mul = rng.integers(2**30, 2**31, g)
    shift = rng.integers(-3, 12, g)
    acts = rng.integers(-128, 128, g)
    dmem = np.zeros(tiny.dmem_bytes, np.uint8)
    for part in range(g // words):
        for r, bank in ((30, bias), (34, mul)):
            dmem[(r + part) * row:(r + part + 1) * row] = \
                bank[part * words:(part + 1) * words].astype("<i4").view(np.uint8)
    dmem[40 * row:41 * row] = (shift & 63).astype(np.uint8)
    dmem[41 * row:42 * row] = acts.astype(np.int8).view(np.uint8)
    dmem[60 * row:60 * row + 4] = np.array([0x7F80], "<u4").view(np.uint8)  # clip -128..127
    lines = [f"{60 * row} -> lsu.ldw", "nop", "lsu.res -> vmac.cfg"]
    lines += [f"{part} -> vmac.prm, {30 + part} -> vmac.lbias" for part in range(g // words)]
    lines += [f"{part} -> vmac.prm, {34 + part} -> vmac.lmul" for part in range(g // words)]
    lines += ["40 -> vmac.lshift, 0 -> vmac.base", "41 -> vmac.aset",
              "50 -> vmac.rq"]
    lines += [f"{k * words} -> vmac.base, {51 + k} -> vmac.racc" for k in range(g // words)]
    lines.append("0 -> ctrl.halt")
    golden = run_both(tiny, rtl_tiny, "\n".join(lines), dmem)
    mem = np.frombuffer(golden[2], np.uint8)
    v = acts + bias
    left, right = np.maximum(-shift, 0), np.maximum(shift, 0)
    t = (((v * mul) << left) + 2**31) >> 32
    y = np.clip(np.where(shift < 0, t, (t + ((1 << right) >> 1)) >> right), -128, 127)
    np.testing.assert_array_equal(mem[50 * row:51 * row].view(np.int8), y)
    np.testing.assert_array_equal(mem[51 * row:(51 + g // words) * row].view(np.int32), v)


def test_counted_loop_and_byte_access(tiny, rtl_tiny):
    # Sum the signed bytes 0..9 of memory with a counted loop; store the sum and a byte.
    text = """
        0 -> r1, 0 -> r2                  # r1: index, r2: sum
    loop: r1 -> lsu.ldb, r1 -> alu.in1
        1 -> alu.add
        alu.res -> r1, lsu.res -> alu.in1
        r2 -> alu.add
        alu.res -> r2, r1 -> alu.in1
        10 -> alu.lt
        alu.res -> b0
        ?b0 @loop -> ctrl.jump
        r2 -> lsu.data, 512 -> lsu.stw
        r2 -> lsu.data, 600 -> lsu.stb, 0 -> ctrl.halt
    """
    dmem = np.zeros(tiny.dmem_bytes, np.uint8)
    dmem[:10] = np.array([5, -3, 100, -128, 7, 0, 1, -1, 64, 2], np.int8).view(np.uint8)
    golden = run_both(tiny, rtl_tiny, text, dmem)
    assert np.frombuffer(golden[2][512:516], np.int32)[0] == 47
    assert golden[2][600] == 47
    assert golden[1].regs[1] == 10


# A second build of the tiny core with other latencies, more buses and guards: other hazards.
PIPELINED = {"name": "tiny-pipelined", "buses": 4, "bool_registers": 3,
             "units": [{"type": "alu", "latency": 3}, {"type": "lsu", "latency": 1},
                       {"type": "vmac", "latency": 2}]}


def differs(config, rtl, text, dmem, offchip=None) -> bool:
    try:
        run_both(config, rtl, text, dmem, offchip)
    except AssertionError:
        return True
    except SimulationError:  # a shrunk program that no longer halts is no reproducer
        return False
    return False


@pytest.mark.slow
@pytest.mark.parametrize("variant, count", [("tiny", 2000), ("pipelined", 600)])
def test_random_programs(tiny, rtl_tiny, variant, count, tmp_path):
    config, rtl = tiny, rtl_tiny
    if variant == "pipelined":
        data = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text()) | PIPELINED
        config = parse_accel_config(data)
        rtl = RtlSimulator(config)
    for seed in range(count):
        text = random_program(rtl.encoding, random.Random(seed))
        rng = np.random.default_rng(seed)
        dmem = rng.integers(0, 256, config.dmem_bytes, dtype=np.uint8)
        offchip = rng.integers(0, 256, config.offchip.bytes, dtype=np.uint8)
        if differs(config, rtl, text, dmem, offchip):
            small = shrink(text, lambda t: differs(config, rtl, t, dmem, offchip))
            path = tmp_path / f"{config.name}-{seed}.s"
            path.write_text(f"# dmem: numpy default_rng({seed}) bytes\n{small}")
            pytest.fail(f"{variant}: random program {seed} differs; shrunk reproducer: {path}\n"
                        f"{small}")


def test_post_processing_against_numpy(tiny, rtl_tiny):
    """Per-channel requantization, binarization, ternarization, residual add and max on the
    vector unit's accumulators, checked against an independent numpy computation."""
    g, row = tiny.vector_width // 8, tiny.vector_width // 8  # lanes per group, bytes per row
    rng = np.random.default_rng(5)
    x1 = rng.integers(-128, 128, g)
    x2 = rng.integers(-128, 128, g)
    x3 = rng.integers(-128, 128, g)
    scale = -300
    bias = rng.integers(-20000, 20000, g)
    mul = rng.integers(2**30, 2**31, g)
    shift = rng.integers(0, 12, g)
    shift[0] = 31  # the rounding term is 2**30, not negative
    lo, hi, zp = -100, 90, -7
    dmem = np.zeros(tiny.dmem_bytes, np.uint8)
    for r, x in ((4, x1), (5, x2), (6, x3)):
        dmem[r * row:(r + 1) * row] = x.astype(np.int8).view(np.uint8)
    cfg = (lo & 0xFF) | (hi & 0xFF) << 8 | (zp & 0xFF) << 24
    words = np.concatenate([bias, mul, shift, [cfg, scale, cfg | 1 << 18]])
    dmem[512:512 + 4 * len(words)] = words.astype(np.int64).astype(np.uint32).view(np.uint8)
    cfg_addr, scale_addr = 512 + 4 * 3 * g, 512 + 4 * (3 * g + 1)
    relu_cfg_addr = 512 + 4 * (3 * g + 2)  # cfg bit 18: ter writes no -1

    lines = [f"{scale_addr} -> lsu.ldw", f"{cfg_addr} -> lsu.ldw", "lsu.res -> vmac.prm",
             "lsu.res -> vmac.cfg, 0 -> vmac.base"]
    lines += ["4 -> vmac.aset", "5 -> vmac.radd"]  # acc = x1 + x2 * scale
    for k, bank in enumerate(("sbias", "smul", "sshift")):
        for j in range(g):
            lines += [f"{512 + 4 * (k * g + j)} -> lsu.ldw", "nop",
                      f"lsu.res -> vmac.prm, {j} -> vmac.{bank}"]
    lines += ["20 -> vmac.rq",  # row 20
              f"{21 * row + 3} -> vmac.bin",  # byte 3 of row 21: G bits in slot 3
              f"{22 * row + 5} -> vmac.ter",  # slot 2 (bytes 4..5) of row 22
              f"{relu_cfg_addr} -> lsu.ldw", "nop", "lsu.res -> vmac.cfg",
              f"{23 * row} -> vmac.ter",  # slot 0 of row 23, no -1 codes
              f"{cfg_addr} -> lsu.ldw", "nop", "lsu.res -> vmac.cfg",
              "6 -> vmac.amax", "24 -> vmac.rq", "0 -> ctrl.halt"]
    golden = run_both(tiny, rtl_tiny, "\n".join(lines), dmem)
    mem = np.frombuffer(golden[2], np.uint8)

    acc = x1 + x2 * scale
    v = acc + bias
    t = (v * mul + 2**31) >> 32
    y = np.clip(((t + ((1 << shift) >> 1)) >> shift) + zp, lo, hi)
    np.testing.assert_array_equal(mem[20 * row:21 * row].view(np.int8), y)
    assert mem[21 * row + 3] == np.packbits(v >= 0, bitorder="little")[0]
    codes = np.where(v > mul, 1, np.where(v < -mul, 3, 0))
    packed = np.packbits(np.unpackbits(codes.astype(np.uint8)[:, None], axis=1,
                                       bitorder="little")[:, :2].ravel(), bitorder="little")
    np.testing.assert_array_equal(mem[22 * row + 4:22 * row + 6], packed)
    relu = np.where(v > mul, 1, 0)
    packed = np.packbits(np.unpackbits(relu.astype(np.uint8)[:, None], axis=1,
                                       bitorder="little")[:, :2].ravel(), bitorder="little")
    np.testing.assert_array_equal(mem[23 * row:23 * row + 2], packed)
    v2 = np.maximum(acc, x3) + bias
    y2 = np.clip((((v2 * mul + 2**31) >> 32) + ((1 << shift) >> 1) >> shift) + zp, lo, hi)
    np.testing.assert_array_equal(mem[24 * row:25 * row].view(np.int8), y2)
    assert golden[1].counters["vpp_groups"] == 8  # aset radd rq bin ter ter amax rq


def _tflite_scale(v: int, m: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier on Python integers, written from gemmlowp's
    definitions (shift in the project's convention: > 0 a right shift)."""
    x = v << max(-shift, 0)
    x = (x + 2**31) % 2**32 - 2**31
    ab = x * m
    s = ab + (2**30 if ab >= 0 else 1 - 2**30)
    t = abs(s) // 2**31 * (1 if s >= 0 else -1)  # C's division truncates toward zero
    e = max(shift, 0)
    mask = (1 << e) - 1
    return (t >> e) + ((t & mask) > (mask >> 1) + (t < 0))


def test_tflite_rounding_and_rescaled_sums(tiny, rtl_tiny):
    """cfg bits 19 / 20: rq rounds as TFLite's kernels (gemmlowp's two roundings, or one);
    rsc0 / rsc add two rows, each
    offset, shifted left and rescaled by its own scalars (TFLite's ADD), then rq with a zero
    point: golden = RTL = Python integers, ties and left shifts included."""
    g, row = tiny.vector_width // 8, tiny.vector_width // 8
    rng = np.random.default_rng(7)
    x1, x2 = rng.integers(-128, 128, g), rng.integers(-128, 128, g)
    off1, off2, ls = 128, -3, 20
    (m1, s1), (m2, s2) = (1717986918, 1), (1431655765, 2)  # both < 1: right shifts
    mul = rng.integers(2**30, 2**31, g)
    shift = rng.integers(-3, 31, g)  # left shifts too
    shift[:4] = [20, 21, 22, 0]
    bias = rng.integers(-2000, 2000, g)
    lo, hi, zp = -128, 110, -9
    dmem = np.zeros(tiny.dmem_bytes, np.uint8)
    for r, x in ((4, x1), (5, x2)):
        dmem[r * row:(r + 1) * row] = x.astype(np.int8).view(np.uint8)
    cfg = (lo & 0xFF) | (hi & 0xFF) << 8 | (zp & 0xFF) << 24 | 1 << 19
    x_of = [(o & 511) << 16 | ls << 8 | (s & 63) for o, s in ((off1, s1), (off2, s2))]
    single = cfg ^ (1 << 19) | 1 << 20  # bit 20: TFLite's single rounding
    words = np.concatenate([bias, mul, shift, [cfg, m1, m2, *x_of, single]])
    dmem[512:512 + 4 * len(words)] = words.astype(np.int64).astype(np.uint32).view(np.uint8)
    at = [512 + 4 * (3 * g + k) for k in range(6)]
    lines = []
    for k, a in enumerate(at):  # into r2 .. r6 (the LSU's latency is 2 on tiny)
        lines += [f"{a} -> lsu.ldw", "nop", f"lsu.res -> r{2 + k}"]
    lines += ["r2 -> vmac.cfg, 0 -> vmac.base, r3 -> vmac.prm",
              "r5 -> vmac.x, 4 -> vmac.rsc0",  # an operand moved with the trigger: used at once
              "r4 -> vmac.prm, r6 -> vmac.x, 5 -> vmac.rsc", "3 -> vmac.get", "vmac.res -> r1"]
    for k, bank in enumerate(("sbias", "smul", "sshift")):
        for j in range(g):
            lines += [f"{512 + 4 * (k * g + j)} -> lsu.ldw", "nop",
                      f"lsu.res -> vmac.prm, {j} -> vmac.{bank}"]
    lines += ["20 -> vmac.rq", "r7 -> vmac.cfg, 21 -> vmac.rq", "0 -> ctrl.halt"]
    golden = run_both(tiny, rtl_tiny, "\n".join(lines), dmem)
    mem = np.frombuffer(golden[2], np.uint8)

    acc = [_tflite_scale((int(a) + off1) << ls, m1, s1) + _tflite_scale((int(b) + off2) << ls,
                                                                          m2, s2)
           for a, b in zip(x1, x2)]
    assert golden[1].regs[1] == acc[3] & M32
    want = [min(max(_tflite_scale(a + int(b), int(m), int(s)) + zp, lo), hi)
            for a, b, m, s in zip(acc, bias, mul, shift)]
    np.testing.assert_array_equal(mem[20 * row:21 * row].view(np.int8), want)
    total = [max(31 + int(s), 0) for s in shift]
    want = [min(max(((a + int(b)) * int(m) + (1 << t >> 1) >> t) + zp, lo), hi)
            for a, b, m, t in zip(acc, bias, mul, total)]
    np.testing.assert_array_equal(mem[21 * row:22 * row].view(np.int8), want)
    # ties: the high multiply rounds them up, the shift away from zero
    assert [_tflite_scale(v, 2**30, 0) for v in (3, -3, 5, -5)] == [2, -1, 3, -2]
    assert [_tflite_scale(v, 2**30, 1) for v in (6, -6, 2, -2)] == [2, -2, 1, -1]


def test_row_and_lane_offsets_wb_and_ab(tiny, rtl_tiny):
    """wb offsets the rows the row port reads (weights, parameter rows), not the window nor the
    rows written; ab offsets base: one loop body serves several chunks of a layer."""
    g, row = tiny.vector_width // 8, tiny.vector_width // 8
    rng = np.random.default_rng(11)
    dmem = rng.integers(0, 256, tiny.dmem_bytes, dtype=np.uint8)
    lines = ["5 -> vmac.wb", "3 -> vmac.x, 2 -> vmac.mac0",  # weights of row 7
             "0 -> vmac.wb, 3 -> vmac.x, 7 -> vmac.mac",   # the same row, named directly
             "0 -> vmac.get", "vmac.res -> r1",
             f"{g} -> vmac.ab, 0 -> vmac.base, 2 -> vmac.wb",
             "7 -> vmac.aset",  # row 9 into lanes g..2g-1
             f"{g} -> vmac.get", "vmac.res -> r2", "0 -> vmac.ab", "0 -> vmac.get",
             "vmac.res -> r3", "0 -> ctrl.halt"]
    golden = run_both(tiny, rtl_tiny, "\n".join(lines), dmem)
    w7 = dmem[7 * row:8 * row].view(np.int8).astype(np.int64)
    w9 = dmem[9 * row:10 * row].view(np.int8).astype(np.int64)
    regs = golden[1].regs
    assert regs[1] == (2 * 3 * w7[0]) & M32  # twice row 7's lane 0 times x
    assert regs[2] == w9[0] & M32  # row 9's byte 0, landed on lane g (base 0 + ab g)
    assert regs[3] == regs[1]  # lane 0 kept its sum


def test_lookup_table_loads_and_maps_bytes(tiny, rtl_tiny):
    """llut loads the 256-entry table G bytes at a time (part prm); lut maps the W/32 bytes of
    the block base points into, reading the row wb names and writing the row triggered, the
    other bytes kept."""
    g, lanes = tiny.vector_width // 8, tiny.vector_width // 32
    rng = np.random.default_rng(12)
    dmem = rng.integers(0, 256, tiny.dmem_bytes, dtype=np.uint8)
    table = rng.permutation(256).astype(np.uint8)
    first = 40  # table rows
    dmem[first * g:first * g + 256] = table
    lines = [f"{q} -> vmac.prm, {first + q} -> vmac.llut" for q in range(256 // g)]
    lines += ["-2 -> vmac.wb, 0 -> vmac.base", "12 -> vmac.lut",  # row 10 -> row 12, block 0
              f"{2 * lanes} -> vmac.base", "12 -> vmac.lut",  # block 2
              "0 -> vmac.wb"]
    lines += [f"{b * lanes} -> vmac.base, 14 -> vmac.lut" for b in range(g // lanes)]
    lines += ["0 -> ctrl.halt"]
    before = dmem.copy()
    golden = run_both(tiny, rtl_tiny, "\n".join(lines), dmem)
    mem = np.frombuffer(golden[2], np.uint8)
    want = before[12 * g:13 * g].copy()
    for b in (0, 2):
        block = slice(b * lanes, (b + 1) * lanes)
        want[block] = table[before[10 * g:11 * g][block]]
    np.testing.assert_array_equal(mem[12 * g:13 * g], want)
    np.testing.assert_array_equal(mem[14 * g:15 * g], table[before[14 * g:15 * g]])
    assert golden[1].counters["vpp_groups"] == 2 + g // lanes


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "wide"])
def test_random_programs_on_wide_datapaths(name):
    """The BrainTTA-like and the wide core: random programs with whole-memory comparison."""
    from hw.config import load_accel_config
    from hw.difftest import diff_random_programs

    mismatches = diff_random_programs(load_accel_config(name), count=150, seed=10_000)
    assert not mismatches, f"{name}: program {mismatches[0].seed} differs " \
                           f"({mismatches[0].what}):\n{mismatches[0].program}"


def test_bank_conflicts_stall_one_cycle(tiny, rtl_tiny):
    """LSU and vector unit reading one bank in one instruction: a stall cycle, same results."""
    assert tiny.dmem_banks == 2
    rows_per_bank = tiny.dmem_rows // tiny.dmem_banks
    row = tiny.vector_width // 8
    far = rows_per_bank * row  # the first byte of bank 1
    text = "\n".join([
        f"{far // 2} -> alu.in1, {far // 2} -> alu.add",
        "alu.res -> r1",
        "3 -> vmac.x, 0 -> lsu.ldw, 1 -> vmac.mac0",          # bank 0 and bank 0: stall
        "r1 -> lsu.base, 0 -> lsu.ldw, 2 -> vmac.mac",          # bank 1 and bank 0: none
        f"4 -> lsu.ldb, {rows_per_bank + 3} -> vmac.mac",      # bank 1 and bank 1: stall
        "0 -> lsu.base, 0 -> vmac.get",
        "vmac.res -> lsu.data, 16 -> lsu.stw",                  # a write alone: none
        # the window of word address xb + x: its row and the next (one double-width access)
        f"{(rows_per_bank - 1) * row // 4} -> vmac.xb, 0 -> vmac.x, 0 -> lsu.ldw",
        "5 -> vmac.dmac, r1 -> lsu.base",                       # no LSU access: none
        "0 -> lsu.ldw, 5 -> vmac.dmac",                         # window's second row: stall
        f"{4 * row} -> lsu.ldw, 5 -> vmac.emac",                # bank 1, window bank 0/1: stall
        f"{row} -> vmac.x, {4 * row} -> lsu.ldw, 5 -> vmac.emac",  # window in bank 1
        "0 -> ctrl.halt"])
    dmem = np.arange(tiny.dmem_bytes, dtype=np.int64).astype(np.uint8)
    cycles, state, _, _ = run_both(tiny, rtl_tiny, text, dmem)
    assert state.counters["stall_cycles"] == 5
    assert cycles == 13 + 5 == state.counters["cycles"]


def test_dma_moves_rows_with_strides_and_counts_its_time(tiny, rtl_tiny):
    """load / store of strided rows, wait stalls until idle, a DMA row meeting an LSU access
    of its bank stalls the core; both engines agree with the timing formula and numpy."""
    off = tiny.offchip
    row, lat = tiny.vector_width // 8, off.latency_cycles
    cpr = off.cycles_per_row(tiny.vector_width)
    rng = np.random.default_rng(3)
    offchip = rng.integers(0, 256, off.bytes, dtype=np.uint8)
    dmem = rng.integers(0, 256, tiny.dmem_bytes, dtype=np.uint8)
    n, stride = 5, 7  # 5 rows, 7 bytes apart off-chip (overlapping rows); shape fits 12 bits
    text = "\n".join([
        f"{stride} -> alu.in1, 12 -> alu.shl",  # shape = n | stride << 12, built on the ALU
        f"alu.res -> alu.in1, {n} -> alu.or",
        "1000 -> dma.ext, alu.res -> dma.shape",
        "20 -> dma.load",                 # cycle 3: rows 20..24 land at 3 + lat + i * cpr
        "0 -> dma.wait",                  # cycle 4: stalls until idle
        f"1500 -> dma.ext, {3} -> dma.shape, 40 -> dma.store",  # rows 40..42 to 1500.. (stride 0)
        f"{40 * row} -> lsu.ldw",         # bank 0 read while the store reads row 40: stall
        "0 -> dma.wait, 0 -> ctrl.halt"])
    cycles, state, mem, ext = run_both(tiny, rtl_tiny, text, dmem, offchip)
    mem, ext = np.frombuffer(mem, np.uint8), np.frombuffer(ext, np.uint8)
    for i in range(n):
        np.testing.assert_array_equal(mem[(20 + i) * row:(21 + i) * row],
                                      offchip[1000 + i * stride:1000 + i * stride + row])
    np.testing.assert_array_equal(ext[1500:1500 + 3 * row], mem[40 * row:43 * row])
    c = state.counters
    load_idle = 3 + lat + (n - 1) * cpr + 1  # the first cycle the load is not busy
    assert c["offchip_read_bits"] == n * tiny.vector_width
    assert c["offchip_write_bits"] == 3 * tiny.vector_width
    # the wait stalls until load_idle and executes then; the store starts the cycle after and
    # reads its rows (bank 0) from the next cycle on: the LSU load waits until the last one has
    # gone (the DMA keeps the bank as long as it meets the load); the final wait stalls until the
    # store's last row is written off-chip (lat cycles after its read)
    store = load_idle + 1
    store_idle = store + 1 + 2 * cpr + lat
    assert cycles == store_idle + 1 == c["cycles"]
    assert c["dma_stall_cycles"] == c["stall_cycles"] == cycles - 8  # 8 instructions


def test_stuck_at_faults_hit_exactly_their_lane(tiny):
    """The fault-injection build forces the stuck bits of one accumulator, wherever it sits
    in the vector unit (every block and column of tiny), and of no other."""
    rtl = RtlSimulator(tiny, fault_port=True)
    lanes, row = tiny.vector_width, tiny.vector_width // 8
    dmem = np.zeros(tiny.dmem_bytes, np.uint8)
    dmem[row * 10:row * 11] = 0xFF  # binary weights +1: every accumulator = x
    lines = ["-5 -> vmac.x, 10 -> vmac.bmac0"]
    for lane in range(lanes):
        lines += [f"{lane} -> vmac.get", f"vmac.res -> lsu.data, {1024 + 4 * lane} -> lsu.stw"]
    prog = assemble("\n".join(lines + ["0 -> ctrl.halt"]), rtl.encoding)
    for faulty in (0, 5, 13, 22, 39, 46, 63):
        rtl.stuck_at(faulty, stuck0=0b10, stuck1=1 << 20)
        rtl.write_dmem(0, dmem)
        rtl.reset()
        rtl.load_program(prog)
        rtl.run(max_cycles=10_000)
        got = rtl.read_dmem(1024, 4 * lanes).view(np.int32)
        want = np.full(lanes, -5, np.int32)
        want[faulty] = (-5 & ~0b10) | (1 << 20)
        np.testing.assert_array_equal(got, want, err_msg=f"lane {faulty}")
    rtl.stuck_at(0)
