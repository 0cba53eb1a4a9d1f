"""Hand-over through the vector unit in lane parts: data rows copied by `aset` then `rq`
(bypassing the requantizer), whole or in parts of W/32 bytes (cfg bit 17: `rq` writes only the
part `base` points into). A byte keeps its place within its data row and changes row only, so
the code generator lays the consumer's grid out for it (its pitch and first byte,
`compiler.codegen`); a producer's output then lands in a padded grid at a few triggers per data
row where the LSU moves a word per two cycles.

The padding the consumer reads is written the same way, from the row of its byte (zero, or an
int8 input's zero point); bytes it never reads
(grid columns and rows past its padded input, channels past C of 8- and 2-bit positions) may
take anything, so whole rows are written where that saves triggers; bytes outside the buffer
are never written. Planned per destination row, then compressed into loops of a few row
operations that repeat with fixed row strides (the grid's rows).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from compiler.errors import CompileError
from compiler.layout import Layout
from compiler.plans.handover import _row_op, _step, _vector_setup
from compiler.schedule import Timeline, TimedMove as M

MAX_OPS = 32  # row operations per loop body
MAX_LOOPS = 24  # loops per copy: more and the LSU's copy is the smaller program

FREE, ZERO, SOURCE, FORBIDDEN = 0, 1, 2, 3  # what a destination byte must hold


@dataclass(frozen=True)
class RowOp:
    dst: int  # the data row written
    src: int | None  # the data row read (None: the zero row)
    parts: tuple[int, ...]  # the parts written (all of them: the whole row at once)
    zero_words: tuple[int, ...] = ()  # bytes of the row the LSU then fills, a word each
    #                                   (padding in a part that the source also writes)


@dataclass(frozen=True)
class RowLoop:
    """`count` repetitions of `ops`, the k-th with every row k * step further on."""

    count: int
    dst_step: int  # rows
    src_step: int
    ops: tuple[RowOp, ...]


@dataclass(frozen=True)
class LaneCopy:
    loops: tuple[RowLoop, ...]
    fill: int = 0  # the byte the padding holds (an int8 input's zero point)


def plan_lanes(src: Layout, dst: Layout, shape: tuple[int, int, int],
               padding: tuple[int, int, int, int], row: int,
               whole_rows: bool = False, fills: frozenset = frozenset({0})) -> LaneCopy | None:
    """The copy of tensor `src` into `dst`'s grid at offset (top, left) of `padding` (top,
    left, bottom, right: the fill the consumer reads around it) by whole rows and parts, or
    None when some byte would have to change its place within a row (or the padding is not a
    byte of `fills`, those with a row to copy from). `whole_rows`: the data rows dst's buffer
    begins and ends in are its own."""
    part = row // 4
    c, h, w = shape
    fill = dst.fill & 0xFF if dst.bits == 8 else 0 if dst.fill == (-1 if dst.bits == 1 else 0) \
        else None
    if src.bits != dst.bits or src.shape != shape or dst.pos_bits % 8 or src.pos_bits % 8 \
            or dst.bits not in (8, 2, 1) or fill not in fills:
        return None
    if dst.bits == 1 and c % 8:  # binary: channels past C must read -1, bits of their own
        return None
    top, left, bottom, right = padding
    o0, o1 = dst.origin[0] + top, dst.origin[1] + left
    h, w = min(h, dst.rows - o0), min(w, dst.cols - o1)  # rows past the grid: never read
    if h <= 0 or w <= 0:
        return None
    lo, hi = dst.addr // row * row, -(-(dst.addr + dst.size) // row) * row
    need = np.full(hi - lo, FREE if whole_rows else FORBIDDEN, np.int8)
    need[dst.addr - lo:dst.addr - lo + dst.size] = FREE
    source = np.zeros(hi - lo, np.int64)
    d_slot, s_slot = dst.pos_bits // 8, src.pos_bits // 8

    def slots(r0, r1, c0, c1, cols, addr, size):
        """Byte addresses [start, start + size) of grid positions rows r0..r1, cols c0..c1."""
        pos = np.arange(r0, r1)[:, None] * cols + np.arange(c0, c1)[None, :]
        return (addr + pos.ravel() * size)[:, None] + np.arange(size)[None, :]

    rows, cols = min(dst.rows, o0 + h + bottom), min(dst.cols, o1 + w + right)
    need[slots(dst.origin[0], rows, dst.origin[1], cols, dst.cols, dst.addr, d_slot) - lo] = ZERO
    run = c * dst.bits // 8 if dst.bits == 1 else min(d_slot, s_slot)
    if run * 8 < c * dst.bits:
        return None
    d = slots(o0, o0 + h, o1, o1 + w, dst.cols, dst.addr, d_slot)[:, :run] - lo
    s = slots(src.origin[0], src.origin[0] + h, src.origin[1], src.origin[1] + w, src.cols,
              src.addr, s_slot)[:, :run]
    if dst.bits != 1:  # the rest of a slot's channels may hold anything
        need[slots(o0, o0 + h, o1, o1 + w, dst.cols, dst.addr, d_slot)[:, run:] - lo] = FREE
    need[d] = SOURCE
    source[d] = s
    ops = _row_ops(need, source, lo, row, part)
    if ops is None:
        return None
    loops = _compress(ops)
    return LaneCopy(tuple(loops), fill) if len(loops) <= MAX_LOOPS else None


def _row_ops(need: np.ndarray, source: np.ndarray, lo: int, row: int,
             part: int) -> list[RowOp] | None:
    """The operations of each destination row, or None when a part mixes what it needs."""
    n_rows = need.size // row
    cells = need.reshape(n_rows, 4, part)
    delta = (source - (lo + np.arange(need.size))).reshape(n_rows, 4, part)
    ops = []
    for r in range(n_rows):
        first = lo // row + r
        zeros, copies, free = [], {}, []
        for q in range(4):
            kinds = set(np.unique(cells[r, q]).tolist())
            if kinds <= {FREE}:
                free.append(q)
                continue
            if FORBIDDEN in kinds:
                if kinds != {FORBIDDEN}:
                    return None  # a part to write that also holds another buffer's bytes
                continue
            if kinds == {ZERO} or kinds == {ZERO, FREE}:
                zeros.append(q)
                continue
            shifts = np.unique(delta[r, q][cells[r, q] == SOURCE])
            if len(shifts) != 1 or shifts[0] % row:
                return None  # a byte that would change its place within a row
            parts, fix = copies.setdefault(first + int(shifts[0]) // row, ([], []))
            parts.append(q)
            if ZERO in kinds:  # padding beside source bytes: whole words, zeroed after
                if part % 4:
                    return None
                words = cells[r, q].reshape(-1, 4)
                zero = np.any(words == ZERO, axis=1)
                if np.any(words[zero] == SOURCE):
                    return None
                fix += [q * part + 4 * int(k) for k in np.flatnonzero(zero)]
        groups = ([(None, (zeros, []))] if zeros else []) + list(copies.items())
        if len(groups) == 1 and len(groups[0][1][0]) + len(free) == 4:
            groups = [(groups[0][0], ([0, 1, 2, 3], groups[0][1][1]))]  # free parts too
        ops += [RowOp(first, s, tuple(qs), tuple(fix)) for s, (qs, fix) in groups]
    return ops


def _compress(ops: list[RowOp]) -> list[RowLoop]:
    """Loops over the operations: at each point the period (up to MAX_OPS operations) whose
    repetitions, each shifted by fixed row strides, cover the most; leftovers unrolled."""

    def shifted(op: RowOp, dd: int, ds: int) -> RowOp:
        return replace(op, dst=op.dst + dd, src=None if op.src is None else op.src + ds)

    loops: list[RowLoop] = []
    single: list[RowOp] = []
    i = 0
    while i < len(ops):
        best = (1, 1, 0, 0)  # covered, period, dst step, src step
        for t in range(1, min(MAX_OPS, (len(ops) - i) // 2) + 1):
            dd = ops[i + t].dst - ops[i].dst
            firsts = [k for k in range(t) if ops[i + k].src is not None]
            ds = 0
            if firsts:
                nxt = ops[i + t + firsts[0]].src
                if nxt is None:
                    continue
                ds = nxt - ops[i + firsts[0]].src
            count = 1
            while i + (count + 1) * t <= len(ops) and all(
                    ops[i + count * t + k] == shifted(ops[i + k], count * dd, count * ds)
                    for k in range(t)):
                count += 1
            if count > 1 and count * t > best[0]:
                best = (count * t, t, dd, ds)
        covered, t, dd, ds = best
        if covered == 1:
            single.append(ops[i])
            if len(single) == MAX_OPS:
                loops.append(RowLoop(1, 0, 0, tuple(single)))
                single = []
            i += 1
            continue
        if single:
            loops.append(RowLoop(1, 0, 0, tuple(single)))
            single = []
        loops += _unrolled(ops[i:i + covered], covered // t, t, dd, ds)
        i += covered
    if single:
        loops.append(RowLoop(1, 0, 0, tuple(single)))
    return loops


def _unrolled(ops: list[RowOp], count: int, t: int, dd: int, ds: int) -> list[RowLoop]:
    """`count` periods of t operations as loops whose bodies hold as many periods as fit
    MAX_OPS (a loop's control costs cycles each time round): by a divisor of the count, or
    the most that fit and the rest unrolled once."""
    most = max(1, min(count, MAX_OPS // t))
    u = max(k for k in range(1, most + 1) if count % k == 0)
    if 2 * u <= most:
        u = most
    main = count // u
    loops = [RowLoop(main, dd * u, ds * u, tuple(ops[:u * t]))]
    if count % u:
        loops.append(RowLoop(1, 0, 0, tuple(ops[main * u * t:])))
    return loops


def emit_lanes(em, copy: LaneCopy, name: str) -> int:
    """The copy's loops as blocks of emitter `em` (registers from r1: the layer's code is
    done). Returns the cycles it takes."""
    plan, cfg = em.plan, em.plan.config
    if plan.tile_io is not None:
        raise CompileError(f"layer {plan.layer.name}: a layer looping over row tiles cannot "
                           f"hand its output over on the accelerator")
    em.regs = iter(range(1, cfg.registers))
    cycles = _vector_setup(em)  # bias 0, bypass, base 0: cfg for whole rows
    whole = 0x80 | (0x7F << 8) | (1 << 16)
    la, lanes = plan.lat["alu"], plan.chunk  # lanes of a part
    r_whole, r_part, r_fill = em.reg(), em.reg(), em.reg()
    fill_row = plan.fill_rows[copy.fill]
    pro = Timeline(cfg)
    em.value(pro, whole, r_whole)
    em.value(pro, whole | 1 << 17, r_part)
    em.value(pro, copy.fill * 0x01010101, r_fill)  # a word of padding (the LSU's patches)
    pro.barrier()
    cycles += em.block(pro)
    free = int(r_fill[1:]) + 1  # each loop's registers from here
    for k, loop in enumerate(copy.loops):
        em.regs = iter(range(free, cfg.registers))
        ops = loop.ops
        d0 = ops[0].dst
        s0 = next((op.src for op in ops if op.src is not None), 0)
        pro = Timeline(cfg)
        rs, rd, rx, ry = em.reg(), em.reg(), em.reg(), em.reg()
        em.value(pro, s0, rs)
        em.value(pro, d0, rd)
        em.value(pro, 1, ry)
        rb = rb_step = None  # the LSU's byte address of row d0, when it zeroes words
        if any(op.zero_words for op in ops):
            rb = em.reg()
            em.value(pro, d0 * plan.row, rb)
            if loop.count > 1 and not em.lo <= loop.dst_step * plan.row <= em.hi:
                rb_step = em.reg()
                em.value(pro, loop.dst_step * plan.row, rb_step)
        pro.barrier()
        body = Timeline(cfg)
        last = 0  # the last cycle that reads rs or rd
        # whole rows first, then parts (cfg bit 17 set with the first part, cleared with the
        # first whole row: each move lands in its trigger's cycle, so the order holds)
        order = sorted(ops, key=lambda op: (len(op.parts) < 4, op.src is not None))
        mode = None
        zeros = False  # the accumulators hold the fill row (the previous op loaded it)
        for op in order:
            if op.src is None:
                if not zeros:
                    body.place([M(0, em.imm(fill_row), "vmac.aset")])
            else:
                last = max(last, _row_op(em, body, rs, op.src - s0, "aset"))
            zeros = op.src is None
            for q in op.parts if len(op.parts) < 4 else (None,):
                extra = []
                want = "whole" if q is None else "part"
                if want != mode:
                    extra.append((r_whole if q is None else r_part, "vmac.cfg"))
                    mode = want
                if q is not None:
                    extra.append((em.imm(q * lanes), "vmac.base"))
                last = max(last, _row_op(em, body, rd, op.dst - d0, "rq", extra))
        written = body.end  # the LSU's zeroes land after the rows they patch
        for op in ops:
            for w in op.zero_words:
                last = max(last, body.place(
                    [M(0, r_fill, "lsu.data"), M(0, rb, "lsu.base"),
                     M(0, em.imm((op.dst - d0) * plan.row + w), "lsu.stw")], min_start=written))
        if loop.count > 1:
            _step(em, body, rs, loop.src_step, None, last - la)
            _step(em, body, rd, loop.dst_step, None, last - la)
            if rb is not None:
                _step(em, body, rb, loop.dst_step * plan.row, rb_step, last - la)
        em.loop_control(body, rx, f"{name}_l{k}_x")
        cycles += em.nest(pro, body, lambda tl: None, 1, loop.count, f"{name}_l{k}", rx, ry)
    return cycles
