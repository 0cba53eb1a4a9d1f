"""Hand-over between layers on the accelerator: a producer's output copied into the layout its
consumer reads, by the LSU, at the end of the producer's code (the cycles the host used to spend
for free between layers, now counted).

A producer writes whole rows of output positions (`cols_out` pitch, `A` lanes per position);
a consumer reads a zero-padded grid of positions of its own pitch, or the tensor flattened. Both
sides are affine in (channel, row, column), so the copy is a nest of at most three loops around
an unrolled run of word (or byte) copies (an inner loop too long to unroll whole runs k steps
per body). The consumer's padding is written first with its fill value (only where the copy
leaves gaps when those form a few regular runs, else the whole buffer): its buffer is shared
with other layers' over time.

Copies whose runs are whole data rows at row-aligned places (positions of one row each, or
whole rows of positions) go through the vector unit instead: `aset` a row into the
accumulators, `rq` it out unchanged (bypass, bias 0 from a zero row), a row of W/8 bytes per
two triggers where the LSU moves a word per two cycles; zero padding of whole rows likewise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from compiler.errors import CompileError
from compiler.layout import Layout, pack_values
from compiler.schedule import Timeline, TimedMove as M

MAX_UNROLL = 32  # copies per loop body
MAX_OUTER = 64  # an outermost loop unrolled in code (a third dimension)
MAX_FILL_GROUPS = 8  # regular runs of padding written separately; more: fill the whole buffer


@dataclass(frozen=True)
class Loop:
    count: int
    src: int  # byte strides
    dst: int


@dataclass(frozen=True)
class Copy:
    """For every step of the loops: unit i moves `unit` bytes from src + pattern[i][0] (plus
    the loops' strides) to dst + pattern[i][1]."""

    src: int  # first byte
    dst: int
    loops: tuple[Loop, ...]  # outermost first; at most three
    pattern: tuple[tuple[int, int], ...]  # (source, destination) offsets of the units of a step
    unit: int  # 4 (ldw/stw), 1 (ldbu/stb), or a data row (the vector unit's aset/rq)
    fill: tuple[tuple[int, int, int, int], ...] = ()  # (byte address, words, count, stride):
    fill_word: int = 0  #                        runs of padding, `count` of them `stride` apart


def plan_copy(src: Layout, dst: Layout, shape: tuple[int, int, int], pad: tuple[int, int],
              imm_max: int = 1 << 11, row: int | None = None) -> Copy | None:
    """The copy of tensor `src` (its shape [C, H, W]) into `dst`, whose grid holds it reshaped
    to `shape` (the consumer's input) at grid offset `pad` (top, left); None when the two are
    not both affine in whole bytes (sub-byte channel runs that end mid-byte, other formats).

    With 8- and 2-bit values a position's channels past C may hold anything (their weights
    are 0, and lanes never mix channels), so whole position slots are copied; binary padding
    channels must read -1 (their weights are corrected for it), which a producer's slot holds
    (`WindowPlan`), so whole slots are copied when they cover the consumer's, else only the
    channels."""
    s_off = src.bit_offsets()
    if src.bits != dst.bits or s_off.size != int(np.prod(shape)):
        return None
    # rows (and columns) past the consumer's grid are never read (a stride that skips them)
    c, h, w = shape
    top, left = dst.origin[0] + pad[0], dst.origin[1] + pad[1]
    hv, wv = min(h, dst.rows - top), min(w, dst.cols - left)
    inner = Layout(dst.addr, (c, hv, wv), dst.rows, dst.cols, (top, left), dst.pos_bits,
                   dst.bits, dst.fill)
    if (hv, wv) != (h, w):
        if tuple(s_off.shape) != tuple(shape) or hv <= 0 or wv <= 0:
            return None
        s_off = s_off[:, :hv, :wv]
    d_off = inner.bit_offsets().reshape(s_off.shape) + 8 * dst.addr
    s_off = s_off + 8 * src.addr
    # binary slots from a producer's lanes hold -1 past the channels: whole slots may move
    # where they fill the consumer's (its padding channels must read -1)
    slack = src.bits in (8, 2) or (src.bits == 1 and src.pos_bits >= dst.pos_bits)
    copy = _position_major(s_off, d_off, src, dst, slack, imm_max, row) or \
        _element_major(s_off, d_off, src.bits, imm_max)
    return None if copy is None else _with_fill(copy, d_off, dst, slack)


def _affine(a: np.ndarray) -> tuple[int, ...] | None:
    """(base, stride per axis) when a[i, j, ...] = base + sum(i_k * stride_k), else None."""
    base = int(a.flat[0])
    strides = []
    for k in range(a.ndim):
        idx = [0] * a.ndim
        if a.shape[k] > 1:
            idx[k] = 1
            strides.append(int(a[tuple(idx)]) - base)
        else:
            strides.append(0)
    grid = base + sum(np.arange(a.shape[k]).reshape([-1 if i == k else 1 for i in range(a.ndim)])
                      * strides[k] for k in range(a.ndim))
    return (base, *strides) if np.array_equal(grid, a) else None


def _position_major(s: np.ndarray, d: np.ndarray, src: Layout, dst: Layout, slack: bool,
                    imm_max: int, row: int | None = None) -> Copy | None:
    """Channels contiguous on both sides: one run per position (the whole slot with slack)."""
    c, b = s.shape[0], src.bits
    run = min(src.pos_bits, dst.pos_bits) if slack else c * b
    if run % 8 or s.ndim != 3 or run < c * b:
        return None
    if c > 1 and not (np.all(np.diff(s, axis=0) == b) and np.all(np.diff(d, axis=0) == b)):
        return None
    sa, da = _affine(s[0]), _affine(d[0])
    if sa is None or da is None or any(x % 8 for x in (*sa, *da)):
        return None
    loops = [Loop(s.shape[1], sa[1] // 8, da[1] // 8), Loop(s.shape[2], sa[2] // 8, da[2] // 8)]
    return shaped_copy(sa[0] // 8, da[0] // 8, loops, run // 8, imm_max, row)


def _element_major(s: np.ndarray, d: np.ndarray, b: int, imm_max: int) -> Copy | None:
    """One element at a time (a flatten into a dense layer): whole bytes only."""
    if b % 8:
        return None
    sa, da = _affine(s), _affine(d)
    if sa is None or da is None or any(x % 8 for x in (*sa, *da)):
        return None
    loops = [Loop(s.shape[k], sa[k + 1] // 8, da[k + 1] // 8) for k in range(s.ndim)]
    return shaped_copy(sa[0] // 8, da[0] // 8, loops, b // 8, imm_max)


def shaped_copy(src: int, dst: int, loops: list[Loop], run: int, imm_max: int,
            row: int | None = None) -> Copy | None:
    """Loops of count 1 dropped, contiguous inner loops merged into the run, the run cut into
    row (given `row`, the vector unit copies), word or byte units, long runs into an inner
    loop, short inner loops unrolled."""
    loops = [lp for lp in loops if lp.count > 1]
    while loops and loops[-1].src == run and loops[-1].dst == run:
        run *= loops.pop().count

    def aligned(a: int) -> bool:
        return run % a == 0 and src % a == 0 and dst % a == 0 and \
            all(lp.src % a == 0 and lp.dst % a == 0 for lp in loops)
    unit = row if row and aligned(row) else 4 if aligned(4) else 1
    if unit == row:  # immediates count rows
        imm_max *= row
    n = run // unit
    if n > MAX_UNROLL:
        k = max(d for d in range(1, MAX_UNROLL + 1) if n % d == 0)
        loops.append(Loop(n // k, k * unit, k * unit))
        n = k
    pattern = [(j * unit, j * unit) for j in range(n)]
    while loops and len(pattern) * loops[-1].count <= MAX_UNROLL:
        lp = loops[-1]
        wide = [(i * lp.src + a, i * lp.dst + b) for i in range(lp.count) for a, b in pattern]
        if max(max(abs(a), abs(b)) for a, b in wide) > imm_max:
            break
        loops.pop()
        pattern = wide
    if loops:  # the innermost loop left: k of its steps per body (less loop control per unit)
        lp = loops[-1]
        for k in range(min(lp.count, MAX_UNROLL // len(pattern)), 1, -1):
            wide = [(i * lp.src + a, i * lp.dst + b) for i in range(k) for a, b in pattern]
            if lp.count % k == 0 and max(max(abs(a), abs(b)) for a, b in wide) <= imm_max:
                loops[-1] = Loop(lp.count // k, k * lp.src, k * lp.dst)
                pattern = wide
                break
    if len(loops) > 3 or (len(loops) == 3 and loops[0].count > MAX_OUTER):
        return None
    return Copy(src, dst, tuple(loops), tuple(pattern), unit)


def _with_fill(copy: Copy, d_off: np.ndarray, dst: Layout, slack: bool) -> Copy:
    """The padding the copy leaves in dst's buffer: as runs of whole words when they are few
    and regular, else the whole buffer (written before the copy). With slack a position's
    whole slot counts as written."""
    b = dst.bits
    n_words = -(-dst.size // 4)
    fill_word = int(np.frombuffer(pack_values(np.full(32 // b if b < 32 else 1, dst.fill), b)
                                  .tobytes()[:4].ljust(4, b"\0"), "<u4")[0])
    covered = np.zeros(n_words * 32, bool)
    rel = d_off.ravel() - 8 * dst.addr
    if slack:
        slots = np.unique(rel // dst.pos_bits) * dst.pos_bits
        bits = slots[:, None] + np.arange(dst.pos_bits)[None, :]
    else:
        bits = rel[:, None] + np.arange(b)[None, :]
    covered[bits.ravel()] = True
    per_word = covered.reshape(n_words, 32)
    full, empty = per_word.all(1), ~per_word.any(1)
    if full.all():
        return copy
    whole = ((dst.addr, n_words, 1, 0),)
    if not (full | empty).all():  # a word written in part: fill everything first
        return replace(copy, fill=whole, fill_word=fill_word)
    runs = []  # (first word, words) of padding
    i = 0
    while i < n_words:
        if empty[i]:
            j = i
            while j < n_words and empty[j]:
                j += 1
            runs.append((i, j - i))
            i = j
        else:
            i += 1
    groups: list[list] = []  # consecutive runs of one length and one stride
    for start, length in runs:
        g = groups[-1] if groups else None
        if g and g[1] == length and (g[2] == 1 or start - g[0] == g[2] * g[3]):
            if g[2] == 1:
                g[3] = start - g[0]
            g[2] += 1
        else:
            groups.append([start, length, 1, 0])
    if len(groups) > MAX_FILL_GROUPS:
        return replace(copy, fill=whole, fill_word=fill_word)
    return replace(copy, fill=tuple((dst.addr + 4 * s, n, k, 4 * st) for s, n, k, st in groups),
                   fill_word=fill_word)


def emit_copy(em, copy: Copy, name: str) -> int:
    """The fill, then the copy, as blocks of emitter `em` (registers from r1: the layer's code
    is done; a layer looping over row tiles hands nothing over). Returns the cycles it takes."""
    plan, cfg = em.plan, em.plan.config
    if plan.tile_io is not None:  # its tile loop's registers stay live to the loop's end
        raise CompileError(f"layer {plan.layer.name}: a layer looping over row tiles cannot "
                           f"hand its output over on the accelerator")
    em.regs = iter(range(1, cfg.registers))
    row = plan.row
    byte = copy.fill_word & 0xFF
    fill_row = plan.fill_rows.get(byte) if copy.fill_word == byte * 0x01010101 else None
    vector = plan.zero_row is not None and (copy.unit == row or fill_row is not None and any(
        _whole_rows(f, row) for f in copy.fill))
    cycles = _vector_setup(em) if vector else 0
    if copy.fill:
        rf = None
        for k, (addr, words, count, stride) in enumerate(copy.fill):
            if vector and fill_row is not None and \
                    _whole_rows((addr, words, count, stride), row):
                cycles += _fill_rows(em, fill_row, addr // row, 4 * words // row, count,
                                     stride // row, f"{name}_f{k}")
                continue
            rf = rf or em.reg()
            cycles += _fill_run(em, rf, addr, words, count, stride, copy.fill_word,
                                f"{name}_f{k}")
    if copy.unit == row:
        copy = replace(copy, src=copy.src // row, dst=copy.dst // row,
                       loops=tuple(Loop(lp.count, lp.src // row, lp.dst // row)
                                   for lp in copy.loops),
                       pattern=tuple((a // row, b // row) for a, b in copy.pattern))
    rs, rd = em.reg(), em.reg()
    ld, st = ("ldw", "stw") if copy.unit == 4 else ("ldbu", "stb")
    ll = plan.lat["lsu"]
    loops = list(copy.loops)
    outer = loops.pop(0) if len(loops) == 3 else Loop(1, 0, 0)
    ny, nx = [Loop(1, 0, 0)] * (2 - len(loops)) + loops
    for o in range(outer.count):
        pro = Timeline(cfg)
        em.value(pro, copy.src + o * outer.src, rs)
        em.value(pro, copy.dst + o * outer.dst, rd)
        rx, ry = em.reg(), em.reg()
        em.value(pro, ny.count, ry)
        steps = {}  # strides beyond the short immediates, held in registers
        for key, v in (("sx", nx.src), ("dx", nx.dst), ("sy", ny.src - nx.count * nx.src),
                       ("dy", ny.dst - nx.count * nx.dst)):
            if not em.lo <= v <= em.hi:
                steps[key] = em.reg()
                em.value(pro, v, steps[key])
        pro.barrier()
        body = Timeline(cfg)
        last = 0  # the last cycle that reads rs and rd
        la = plan.lat["alu"]
        for so, do in copy.pattern:
            if copy.unit == row:  # a row into the accumulators and out unchanged
                last = max(last, _row_op(em, body, rs, so, "aset"),
                           _row_op(em, body, rd, do, "rq"))
                continue
            at = body.place([M(0, rs, "lsu.base"), M(0, em.imm(so), f"lsu.{ld}"),
                             M(ll, "lsu.res", "lsu.data"), M(ll, rd, "lsu.base"),
                             M(ll, em.imm(do), f"lsu.{st}")])
            last = max(last, at + ll)
        _step(em, body, rs, nx.src, steps.get("sx"), last - la)
        _step(em, body, rd, nx.dst, steps.get("dx"), last - la)
        label = f"{name}_c{o}"
        em.loop_control(body, rx, f"{label}_x")

        def tail(tl, rs=rs, rd=rd, steps=steps):
            _step(em, tl, rs, ny.src - nx.count * nx.src, steps.get("sy"))
            _step(em, tl, rd, ny.dst - nx.count * nx.dst, steps.get("dy"))

        cycles += em.nest(pro, body, tail, ny.count, nx.count, label, rx, ry)
        em.regs = iter(range(int(rd[1:]) + 1, cfg.registers))
    return cycles


def _step(em, tl: Timeline, reg: str, step: int, step_reg: str | None,
          min_start: int = 0) -> None:
    """reg += step (from a register when it is beyond the short immediates), its write landing
    no earlier than the end of cycle min_start + latency (after the last read of reg)."""
    if step == 0:
        return
    min_start = max(0, min_start)
    if step_reg is None:
        em.add(tl, reg, step, min_start)
        return
    la = em.plan.lat["alu"]
    tl.place([M(0, reg, "alu.in1"), M(0, step_reg, "alu.add"), M(la, "alu.res", reg)],
             min_start=min_start)


def _fill_run(em, rf: str, addr: int, words: int, count: int, stride: int, fill_word: int,
              label: str) -> int:
    """`count` runs of `words` fill words, `stride` bytes apart, from byte `addr`."""
    cfg = em.plan.config
    k = max(d for d in range(1, MAX_UNROLL + 1) if words % d == 0)
    if words > MAX_UNROLL and k < 4:
        k = 1
    per_run = words // k  # iterations of k stores for one run
    pro = Timeline(cfg)
    rd, rx, ry = em.reg(), em.reg(), em.reg()
    em.value(pro, fill_word, rf)
    em.value(pro, addr, rd)
    em.value(pro, count, ry)
    back = stride - words * 4
    rb = None
    if not em.lo <= back <= em.hi:
        rb = em.reg()
        em.value(pro, back, rb)
    pro.barrier()
    body = Timeline(cfg)
    last = 0
    for j in range(k):
        last = max(last, body.place([M(0, rf, "lsu.data"), M(0, rd, "lsu.base"),
                                     M(0, em.imm(4 * j), "lsu.stw")]))
    _step(em, body, rd, 4 * k, None, last - em.plan.lat["alu"])
    em.loop_control(body, rx, f"{label}_x")
    cycles = em.nest(pro, body, lambda tl: _step(em, tl, rd, back, rb) if count > 1 else None,
                     count, per_run, label, rx, ry)
    em.regs = iter(range(int(rf[1:]) + 1, cfg.registers))
    return cycles


def _whole_rows(fill: tuple[int, int, int, int], row: int) -> bool:
    addr, words, count, stride = fill
    return addr % row == 0 and (4 * words) % row == 0 and (count == 1 or stride % row == 0)


def _vector_setup(em) -> int:
    """The vector unit set to pass rows unchanged: bias 0 (from the zero row), rq bypassing
    the requantization with the full int8 range, group 0. Returns cycles."""
    plan = em.plan
    pro = Timeline(plan.config)
    pro.place([M(0, "0", "vmac.base")])
    em.load_params(pro, {"bias": [plan.zero_row] * 4})
    em.value(pro, 0x80 | (0x7F << 8) | (1 << 16), "vmac.cfg")
    pro.barrier()
    return em.block(pro)


def _row_op(em, tl: Timeline, reg: str, offset: int, op: str, extra=()) -> int:
    """vmac.<op> on row reg + offset, with `extra` (source, port) moves in its cycle; returns
    the cycle it reads reg."""
    if offset == 0:
        return tl.place([M(0, reg, f"vmac.{op}"), *(M(0, s, d) for s, d in extra)])
    la = em.plan.lat["alu"]
    return tl.place([M(0, reg, "alu.in1"), M(0, em.imm(offset), "alu.add"),
                     M(la, "alu.res", f"vmac.{op}"), *(M(la, s, d) for s, d in extra)])


def _fill_rows(em, fill_row: int, first: int, rows: int, count: int, stride: int,
               label: str) -> int:
    """`count` runs of `rows` rows of padding, `stride` rows apart, from row `first`: the row
    of its byte into the accumulators once, then an rq per row."""
    cfg = em.plan.config
    pro = Timeline(cfg)
    rd, rx, ry = em.reg(), em.reg(), em.reg()
    pro.place([M(0, em.imm(fill_row), "vmac.aset")])
    em.value(pro, first, rd)
    em.value(pro, count, ry)
    pro.barrier()
    k = max(d for d in range(1, MAX_UNROLL + 1) if rows % d == 0)
    body = Timeline(cfg)
    last = 0
    for j in range(k):
        last = max(last, _row_op(em, body, rd, j, "rq"))
    _step(em, body, rd, k, None, last - em.plan.lat["alu"])
    em.loop_control(body, rx, f"{label}_x")
    back = stride - rows
    cycles = em.nest(pro, body, lambda tl: _step(em, tl, rd, back, None) if count > 1 else None,
                     count, rows // k, label, rx, ry)
    em.regs = iter(range(int(rd[1:]) + 1, cfg.registers))
    return cycles
