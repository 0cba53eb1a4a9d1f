"""Pooling, residual adds and per-channel affine layers: operations on whole rows of int8 values.

Each iteration reads rows into G = W/8 accumulator lanes (aset), combines more rows into them
(amax for max pooling, radd for sums), then requantizes the group into one output row (rq), with
the per-lane parameters loaded from parameter rows. Pooling keeps one row per position and
channel group (lanes = channels), except a max pooling of few channels without padding: it
packs positions into rows, each tap's gathered by the LSU (`PoolPlan`). Adds and
affine layers walk the tensor's rows in order.

  body:   rin (+ offset) -> vmac.aset / amax / radd   (per tap or operand)
          rout -> vmac.rq;  rin += step, rout += groups
"""

from __future__ import annotations

import numpy as np

from compiler.errors import CompileError, MemoryFitError
from compiler.intsem import QMIN
from compiler.layout import Layout, RowTiling
from compiler.plans.base import Emitter, Plan, align_up, indent, next_pow2
from compiler.plans.handover import Loop, emit_copy, shaped_copy
from compiler.program import LayerBinding
from compiler.schedule import Timeline, TimedMove as M
from hw.isa import Encoding


class RowPlan(Plan):
    """The loop machinery; subclasses set the layouts and list one iteration's row operations
    (`ops`: (opcode, row offset from rin, prm factor or None))."""

    def __init__(self, index, layer, config, mem):
        super().__init__(index, layer, config, mem)
        if layer.out.kind != "int8":
            raise CompileError(f"layer {layer.name}: {type(layer).__name__} writes int8 only")
        self.params = self.param_sets()  # allocated at planning, like every constant

    def param_sets(self) -> list[dict]:
        return [self.requant_params()]

    def requant_params(self, channels: np.ndarray | None = None) -> dict[str, int]:
        """Parameter rows of one group: the layer's requantization per lane (per channel when
        `channels` maps lanes to channels, else one for all), bias 0 unless per channel."""
        rq, G = self.layer.out.requant, self.group
        if rq is None:  # max pooling: values pass unchanged (bypass)
            return self.param_rows(np.zeros(G, np.int64))
        lanes = np.zeros(G, np.int64) if channels is None else channels

        def per_lane(values):
            v = np.atleast_1d(np.asarray(values, np.int64))
            return v[lanes] if v.size > 1 else np.full(G, v[0])

        bias = np.zeros(G, np.int64) if channels is None else per_lane(self.layer.bias)
        return self.param_rows(bias, per_lane(rq.multiplier), per_lane(rq.shift))

    def emit_rows(self, enc: Encoding, inputs: tuple[Layout, ...], out_l: Layout,
                  n_groups: int, params: list[dict], ops: list, ny: int, nx: int, step: int,
                  row_step: int, tiling: RowTiling | None, info: dict) -> tuple[list, LayerBinding]:
        em = Emitter(self, enc)
        regs = self.row_regs(em)
        cycles = em.start()
        for g in range(n_groups):
            cycles += self.row_pass(em, regs, params[g % len(params)], ops,
                                    inputs[0].addr // self.row + g, out_l.addr // self.row + g,
                                    ny, nx, step, row_step, n_groups, 0, f"{self.label}_g{g}")
        cycles += em.halt()
        if tiling is not None:
            tiling = RowTiling(tiling.rows, tiling.tiles, tiling.step, tiling.in_rows,
                               tiling.padding, tiling.fill, cycles)
            cycles *= tiling.tiles
        info = {**info, "groups": n_groups, "taps": len(ops),
                "row_tiles": tiling.tiles if tiling else 1}
        return indent(em.lines), self.looped(em, LayerBinding(
            self.layer, 0, cycles, inputs, out_l, 0, 0, info, tiling, blocks=tuple(em.blocks)))

    @staticmethod
    def row_regs(em: Emitter) -> tuple[str, str, str, str]:
        return em.reg(), em.reg(), em.reg(), em.reg()

    def row_pass(self, em: Emitter, regs, params: dict, ops: list, in_row: int, out_row: int,
                 ny: int, nx: int, step: int, row_step: int, out_step: int,
                 out_row_step: int, name: str) -> int:
        """ny rows of nx iterations: each combines its `ops` rows (offsets from rin) into the
        accumulators and requantizes them into row rout; rin += step, rout += out_step per
        iteration, += row_step / out_row_step more per row. Returns cycles."""
        layer, cfg, la = self.layer, self.config, self.lat["alu"]
        rin, rout, rx, ry = regs
        rq = layer.out.requant
        bypass = rq is None
        lo, hi = getattr(layer, "clip", (QMIN, 127)) if bypass else (rq.lo, rq.hi)
        pro = Timeline(cfg)
        pro.place([M(0, "0", "vmac.base")])
        em.load_params(pro, params)
        em.value(pro, (lo & 0xFF) | ((hi & 0xFF) << 8) | (1 << 16) if bypass else rq.cfg(),
                 "vmac.cfg")
        em.value(pro, in_row, rin)
        em.value(pro, out_row, rout)
        em.value(pro, ny, ry)
        scalars = {}  # rsc's multiplier and offset / shifts: words, kept in registers
        for _, _, prm, *x in ops:
            for v in (prm, *x) if x else ():
                if v not in scalars:
                    scalars[v] = em.reg()
                    em.value(pro, v, scalars[v])
        pro.barrier()
        body = Timeline(cfg)
        for vop, off, prm, *x in ops:
            chain = [M(0, rin, "alu.in1"), M(0, em.imm(off), "alu.add"),
                     M(la, "alu.res", f"vmac.{vop}")]
            if x:  # rsc: its multiplier, offset and shifts
                chain += [M(la, scalars[prm], "vmac.prm"), M(la, scalars[x[0]], "vmac.x")]
            elif prm is not None:
                chain.append(M(la, em.imm(prm), "vmac.prm"))
            body.place(chain)
        post = body.place([M(0, rout, "vmac.rq")])
        em.add(body, rin, step)
        em.add(body, rout, out_step, min_start=max(0, post - la))
        em.loop_control(body, rx, f"{name}_x")

        def row_tail(tl):
            em.add(tl, rin, row_step)
            em.add(tl, rout, out_row_step)

        return em.nest(pro, body, row_tail, ny, nx, name, rx, ry)


MAX_PACKED_TAPS = 16  # a packed pool's code gathers each tap's plane in a loop nest of its own


def packed_slot(layer, group: int) -> int | None:
    """A packed max pool's bytes per position (A), or None when it keeps a row per position.
    Packing needs no padding, at least 8 positions a row (wider positions: a convolution
    writes them one per trigger, a row each, which a row pool reads in place) and more than
    one output; and it must cost less. Per output, a row pool takes a vector op per tap (about
    3 cycles) and a copy of its sy * sx new input positions into rows; a packed one gathers a
    position per tap, A / 4 words at about 2 cycles a word, and shares its vector ops with
    the row's other outputs: windows that tile the input always pack, overlapping ones when
    positions are narrow (3x3 stride 2: A <= 8)."""
    a = max(4, next_pow2(layer.in_shape[0]))
    _, oh, ow = layer.out_shape
    taps = layer.kernel[0] * layer.kernel[1]
    fresh = layer.stride[0] * layer.stride[1]
    packed = taps * a / 2 + 3 * taps * a / group
    rows = 3 * taps + min(fresh, taps) * a / 2
    return a if layer.op == "max" and not any(layer.padding) and 8 * a <= group and \
        oh * ow > 1 and taps <= MAX_PACKED_TAPS and packed < rows else None


class PoolPlan(RowPlan):
    """Max and average pooling. Max pooling without padding over at most G/8 channels (windows
    that tile the input, or overlapping ones of narrow positions: `packed_slot`) packs P = G/A
    positions into a row (A = the channels' bytes rounded up to a power of two, at least a
    word): the LSU first gathers each tap's input positions, in output order, into a plane of
    their own; then a pass combines the planes row by row, P outputs a trigger. The input is
    read where it lies, in its producer's grid (`adopt_grid`). Otherwise one row per position
    and group of G channels (lanes = channels)."""

    def __init__(self, index, layer, config, mem):
        super().__init__(index, layer, config, mem)
        self.cols: int | None = None  # a packed pool's input grid: columns and words per
        self.s: int | None = None  # position (its own, or its producer's)

    def packs(self) -> bool:
        return packed_slot(self.layer, self.group) is not None

    def slot(self) -> int:
        return packed_slot(self.layer, self.group)

    def adopt_grid(self, cols: int, pos_bits: int) -> bool:
        c, _, w = self.layer.in_shape
        if not self.packs() or cols < w or pos_bits % 32 or pos_bits < 8 * c:
            return False
        self.cols, self.s = cols, pos_bits // 32
        return True

    def output_grid(self) -> tuple[int, int, int, int]:
        o, oh, ow = self.layer.out_shape
        if self.packs():
            return oh, ow, 8 * self.slot(), 8
        return oh, ow, -(-o // self.group) * self.group * 8, 8

    def emit(self, scratch: int, enc: Encoding):
        if self.packs():
            try:
                return self.emit_packed(scratch, enc)
            except MemoryFitError:
                if self.cols is not None:
                    raise
        layer, G = self.layer, self.group
        c, h, w = layer.in_shape
        o, oh, ow = layer.out_shape
        n_groups = -(-c // G)
        (kh, kw), (sy, sx), (_, pl, _, pr) = layer.kernel, layer.stride, layer.padding
        fill = QMIN if layer.op == "max" else 0
        cols = w + pl + pr

        def in_rows(t: int) -> int:
            return (t - 1) * sy + kh

        pos = n_groups * G  # bytes per position
        rows = self.tile_rows(scratch, oh, in_rows, cols * pos, ow * pos)
        in_l = Layout(scratch, (c, in_rows(rows), cols), in_rows(rows), cols, (0, 0), 8 * pos,
                      8, fill)
        out_l = Layout(align_up(scratch + in_l.size, self.row), (o, rows, ow), rows, ow, (0, 0),
                       8 * pos, 8, 0)
        taps = [(ky, kx) for ky in range(kh) for kx in range(kw)]
        ops = [("aset" if i == 0 else ("amax" if layer.op == "max" else "radd"),
                (ky * cols + kx) * n_groups, None if i == 0 or layer.op == "max" else 1)
               for i, (ky, kx) in enumerate(taps)]
        tiles = -(-oh // rows)
        tiling = RowTiling(rows, tiles, rows * sy, in_rows(rows), layer.padding, fill, 0)
        return self.emit_rows(enc, (in_l,), out_l, n_groups, self.params, ops,
                              rows, ow, sx * n_groups, (sy * cols - ow * sx) * n_groups, tiling,
                              {})

    def emit_packed(self, scratch: int, enc: Encoding):
        layer, row = self.layer, self.row
        c, h, w = layer.in_shape
        o, oh, ow = layer.out_shape
        (kh, kw), (sy, sx) = layer.kernel, layer.stride
        A = self.slot()
        cols, s = self.cols or w, self.s or A // 4
        in_l = Layout(scratch, (c, h, w), h, cols, (0, 0), 32 * s, 8)
        plane_rows = -(-oh * ow * A // row)
        planes = align_up(scratch + in_l.size, row)
        taps = [(ky, kx) for ky in range(kh) for kx in range(kw)]
        out_l = Layout(planes + len(taps) * plane_rows * row, (o, oh, ow), oh, ow, (0, 0), 8 * A,
                       8, 0)
        if out_l.addr + plane_rows * row > self.mem.limit:
            raise MemoryFitError(f"layer {layer.name}: its packed planes do not fit the data "
                                 f"memory of accelerator '{self.config.name}'")
        em = Emitter(self, enc)
        cycles = em.start()
        pos = 4 * s
        for t, (ky, kx) in enumerate(taps):  # 8-bit: bytes past the channels may hold anything
            copy = shaped_copy(in_l.addr + (ky * cols + kx) * pos,
                               planes + t * plane_rows * row,
                               [Loop(oh, sy * cols * pos, ow * A), Loop(ow, sx * pos, A)],
                               min(pos, A), enc.imm_range[1])
            cycles += emit_copy(em, copy, f"{self.label}_t{t}")
        ops = [("aset" if t == 0 else "amax", t * plane_rows, None) for t in range(len(taps))]
        cycles += self.row_pass(em, self.row_regs(em), self.params[0], ops, planes // row,
                                out_l.addr // row, 1, plane_rows, 1, 0, 1, 0, f"{self.label}_p")
        cycles += em.halt()
        info = {"groups": 1, "taps": len(taps), "row_tiles": 1, "positions_per_row": row // A}
        return indent(em.lines), LayerBinding(layer, 0, cycles, (in_l,), out_l, 0, 0, info,
                                              None, blocks=tuple(em.blocks))


class AddPlan(RowPlan):
    """requant(a * ka + b * kb) over the tensors' bytes in order, G at a time. The layout is
    free (positions of c bytes by default): in a chained network the add takes its producers'
    (`geometry`: rows, columns, position bits), and may read them where they lie (`external`:
    each input's address, or None for a buffer of its own)."""

    free_layout = True
    geometry: tuple[int, int, int] | None = None

    def emit(self, scratch: int, enc: Encoding):
        layer = self.layer
        c, h, w = layer.shape
        rows, cols, pos_bits = self.geometry or (h, w, 8 * c)
        n_rows = -(-rows * cols * pos_bits // 8 // self.group)
        size = n_rows * self.row
        top = scratch
        inputs = []
        for addr in self.external or (None, None):
            if addr is None:
                addr, top = top, top + size
            inputs.append(Layout(addr, (c, h, w), rows, cols, (0, 0), pos_bits, 8))
        out_l = Layout(top, (c, h, w), rows, cols, (0, 0), pos_bits, 8)
        if out_l.addr + size > self.mem.limit:
            raise MemoryFitError(f"layer {layer.name}: its activations do not fit the data memory "
                               f"of accelerator '{self.config.name}' ({self.mem.limit} bytes, "
                               f"{scratch} used by weights); element-wise layers are not tiled")
        gap = (inputs[1].addr - inputs[0].addr) // self.row
        if layer.rescale:  # TFLite: each input offset, shifted and rescaled (rsc0, rsc)
            ops = [(op, off, r.multiplier, (r.offset & 511) << 16 | r.left_shift << 8
                    | (r.shift & 63)) for op, off, r in zip(("rsc0", "rsc"), (0, gap),
                                                           layer.rescale)]
        else:
            for f in (layer.ka, layer.kb):
                Emitter(self, enc).imm(f)
            ops = [("aset", 0, None)] + ([("radd", 0, layer.ka - 1)] if layer.ka != 1 else [])
            ops.append(("radd", gap, layer.kb))
        return self.emit_rows(enc, tuple(inputs), out_l, 1, self.params, ops, 1, n_rows,
                              1, 0, None, {})


class AffinePlan(RowPlan):
    """out = requant(x + bias[c]) per channel: positions of A = next_pow2(C) bytes (whole groups
    above G), walked row by row; lane j of a group holds channel j mod A."""

    def lanes(self) -> int:
        c, G = self.layer.in_grid[0], self.group
        return next_pow2(c) if c < G else align_up(c, G)

    def param_sets(self) -> list[dict]:
        A, G, c = self.lanes(), self.group, self.layer.in_grid[0]
        return [self.requant_params(np.minimum(
            (np.arange(G) % A) if A < G else r * G + np.arange(G), c - 1))
            for r in range(max(1, A // G))]

    def emit(self, scratch: int, enc: Encoding):
        layer, G = self.layer, self.group
        c, h, w = layer.in_grid
        A = self.lanes()
        n_rows = -(-h * w * A // G)
        size = n_rows * self.row
        in_l = Layout(scratch, (c, h, w), h, w, (0, 0), 8 * A, 8)
        out_l = Layout(scratch + size, (c, h, w), h, w, (0, 0), 8 * A, 8)
        if out_l.addr + size > self.mem.limit:
            raise MemoryFitError(f"layer {layer.name}: its activations do not fit the data memory "
                               f"of accelerator '{self.config.name}'; element-wise layers are "
                               f"not tiled")
        sets = len(self.params)
        # with several sets, each set walks its own rows (every sets-th row)
        return self.emit_rows(enc, (in_l,), out_l, sets, self.params, [("aset", 0, None)], 1,
                              n_rows // sets, sets, 0, None, {"lanes_per_position": A})


class BilinearPlan(RowPlan):
    """Bilinear upsampling: the input on a grid one position wider on every side, whose border
    the code first fills with copies of the edge (clamping, by the LSU); then per output phase
    (dy, dx) and group of G channels, a pass over the input positions sums the phase's taps
    (aset, radd x weight) and requantizes into every fy-th row and fx-th column of the output."""

    def emit(self, scratch: int, enc: Encoding):
        from compiler.kinds.rows import bilinear_weights

        layer, G = self.layer, self.group
        c, h, w = layer.in_shape
        o, oh, ow = layer.out_shape
        fy, fx = layer.factor
        n_groups = -(-c // G)
        pos = n_groups * G  # bytes per position: one row per group
        rows, cols = h + 2, w + 2
        in_l = Layout(scratch, (c, h, w), rows, cols, (1, 1), 8 * pos, 8, 0)
        out_l = Layout(align_up(scratch + in_l.size, self.row), (o, oh, ow), oh, ow, (0, 0),
                       8 * pos, 8, 0)
        if out_l.addr + out_l.size > self.mem.limit:
            raise MemoryFitError(f"layer {layer.name}: its activations do not fit the data memory "
                                 f"of accelerator '{self.config.name}' ({self.mem.limit} bytes, "
                                 f"{scratch} used by weights); upsampling is not tiled")
        imm = enc.imm_range[1]
        at = lambda y, x: in_l.addr + (y * cols + x) * pos  # noqa: E731
        edges = [(at(1, 1), at(0, 1), [Loop(w, pos, pos)]),  # top, bottom rows (inner part)
                 (at(h, 1), at(h + 1, 1), [Loop(w, pos, pos)]),
                 (at(0, 1), at(0, 0), [Loop(rows, cols * pos, cols * pos)]),  # then columns
                 (at(0, w), at(0, w + 1), [Loop(rows, cols * pos, cols * pos)])]
        em = Emitter(self, enc)
        cycles = em.start()
        for k, (src, dst, loops) in enumerate(edges):
            row = self.row if self.zero_row is not None else None
            copy = shaped_copy(src, dst, loops, pos, imm, row)
            cycles += emit_copy(em, copy, f"{self.label}_e{k}")
        regs = self.row_regs(em)
        phases = bilinear_weights(layer)
        for dy, dx, taps in phases:
            ops = []
            for i, (a, b, wt) in enumerate(taps):
                off = (a * cols + b) * n_groups
                if i == 0:
                    ops.append(("aset", off, None))
                    if wt != 1:
                        ops.append(("radd", off, wt - 1))
                else:
                    ops.append(("radd", off, wt))
            for g in range(n_groups):
                cycles += self.row_pass(
                    em, regs, self.params[0], ops, (at(1, 1) // self.row) + g,
                    out_l.addr // self.row + (dy * ow + dx) * n_groups + g, h, w, n_groups,
                    2 * n_groups, fx * n_groups, ((fy - 1) * ow) * n_groups,
                    f"{self.label}_p{dy}_{dx}_g{g}")
        cycles += em.halt()
        return indent(em.lines), LayerBinding(
            layer, 0, cycles, (in_l,), out_l, 0, 0,
            {"groups": n_groups, "phases": len(phases)}, None, blocks=tuple(em.blocks))


class LutPlan(Plan):
    """y = table[x] over the tensor's bytes in order: the table loaded into the vector unit
    (llut, 256 / G rows), then per row four lut triggers of W/32 bytes each (base picks the
    block; wb the input row relative to the output row). The layout is free, as an add's."""

    free_layout = True
    geometry: tuple[int, int, int] | None = None

    def __init__(self, index, layer, config, mem):
        super().__init__(index, layer, config, mem)
        per = min(self.group, 256)
        table = layer.table.astype(np.int8).view(np.uint8)
        data = b"".join(table[q * per:(q + 1) * per].tobytes().ljust(self.row, b"\0")
                        for q in range(256 // per))
        self.table_row = mem.rows(data, f"layer {layer.name}: lookup table")
        self.parts = 256 // per

    def emit(self, scratch: int, enc: Encoding):
        layer, cfg, G = self.layer, self.config, self.group
        L, la = cfg.vector_width // 32, self.lat["alu"]
        c, h, w = layer.shape
        rows, cols, pos_bits = self.geometry or (h, w, 8 * c)
        n_rows = -(-rows * cols * pos_bits // 8 // G)
        size = n_rows * self.row
        at = (self.external or (None,))[0]
        in_addr, top = (scratch, scratch + size) if at is None else (at, scratch)
        in_l = Layout(in_addr, (c, h, w), rows, cols, (0, 0), pos_bits, 8)
        out_l = Layout(top, (c, h, w), rows, cols, (0, 0), pos_bits, 8)
        if out_l.addr + size > self.mem.limit:
            raise MemoryFitError(f"layer {layer.name}: its activations do not fit the data memory "
                                 f"of accelerator '{cfg.name}' ({self.mem.limit} bytes, "
                                 f"{scratch} used by weights); element-wise layers are not tiled")
        em = Emitter(self, enc)
        rout, rx = em.reg(), em.reg()
        cycles = em.start()
        pro = Timeline(cfg)
        for q in range(self.parts):
            pro.place([M(0, str(q), "vmac.prm"), M(0, em.imm(self.table_row + q), "vmac.llut")])
        pro.barrier()  # wb offsets the table's rows too: set after them
        em.value(pro, in_l.addr // self.row - out_l.addr // self.row, "vmac.wb")
        em.value(pro, out_l.addr // self.row, rout)
        em.value(pro, n_rows, rx)
        pro.barrier()
        cycles += em.block(pro)
        body = Timeline(cfg)
        last = max(body.place([M(0, em.imm(b * L), "vmac.base"), M(0, rout, "vmac.lut")])
                   for b in range(G // L))
        em.add(body, rout, 1, min_start=max(0, last - la))
        em.loop_control(body, rx, f"{self.label}_x")
        cycles += n_rows * em.block(body, f"{self.label}_x", n_rows, 1)
        done = Timeline(cfg)  # no offsets left for the code after it
        done.place([M(0, "0", "vmac.wb"), M(0, "0", "vmac.base")])
        cycles += em.block(done) + em.halt()
        return indent(em.lines), self.looped(em, LayerBinding(
            layer, 0, cycles, (in_l,), out_l, 0, 0, {"rows": n_rows}, None,
            blocks=tuple(em.blocks)))


class ScalePlan(Plan):
    """x * s[c] requantized: s's rows are the weights of the element-wise MAC (one trigger per
    row of x, lanes = channels), then rq. Positions take A bytes (a power of two of at least
    4 below G channels, whole groups above); below G, a row holds G / A positions, so the
    code first repeats s across its row (LSU word copies)."""

    def __init__(self, index, layer, config, mem):
        super().__init__(index, layer, config, mem)
        rq, G = layer.out.requant, self.group
        self.params = self.param_rows(np.zeros(G, np.int64), np.full(G, rq.multiplier[0]),
                                      np.full(G, rq.shift[0]))

    def emit(self, scratch: int, enc: Encoding):
        layer, cfg, G = self.layer, self.config, self.group
        L, la, ll = cfg.vector_width // 32, self.lat["alu"], self.lat["lsu"]
        c, h, w = layer.shape
        A = max(4, next_pow2(c)) if c < G else align_up(c, G)
        chunks = max(1, A // G)
        n_rows = -(-h * w * A // G)
        x_l = Layout(scratch, (c, h, w), h, w, (0, 0), 8 * A, 8)
        s_l = Layout(scratch + n_rows * self.row, (c, 1, 1), 1, 1, (0, 0), 8 * A, 8)
        out_l = Layout(s_l.addr + chunks * self.row, (c, h, w), h, w, (0, 0), 8 * A, 8)
        if out_l.addr + n_rows * self.row > self.mem.limit:
            raise MemoryFitError(f"layer {layer.name}: its activations do not fit the data memory "
                                 f"of accelerator '{cfg.name}' ({self.mem.limit} bytes, "
                                 f"{scratch} used by weights); element-wise layers are not tiled")
        em = Emitter(self, enc)
        rxw, rout, rx, ry = em.reg(), em.reg(), em.reg(), em.reg()
        cycles = em.start()
        pro = Timeline(cfg)
        em.load_params(pro, self.params)
        em.value(pro, layer.out.requant.cfg(), "vmac.cfg")
        pro.place([M(0, "0", "vmac.base")])
        if A < G:  # s repeated across its row: one position's A bytes at every position
            em.value(pro, s_l.addr, "lsu.base")
            pro.barrier()
            for k in range(1, G // A):
                for i in range(0, A, 4):
                    pro.place([M(0, em.imm(i), "lsu.ldw"), M(ll, "lsu.res", "lsu.data"),
                               M(ll, em.imm(k * A + i), "lsu.stw")])
        em.value(pro, x_l.addr // 4, rxw)
        em.value(pro, out_l.addr // self.row, rout)
        em.value(pro, 1, ry)
        pro.barrier()
        s_row = s_l.addr // self.row
        body = Timeline(cfg)
        last = -1  # each chunk's MAC after the previous chunk's rq has read the accumulators
        for q in range(chunks):
            mac = body.place([M(0, rxw, "vmac.xb"), M(0, em.imm(q * L), "vmac.x"),
                              M(0, em.imm(s_row + q), "vmac.emac0")], min_start=last + 1)
            if q == 0:
                last = body.place([M(0, rout, "vmac.rq")], min_start=mac + 1)
            else:
                last = body.place([M(0, rout, "alu.in1"), M(0, em.imm(q), "alu.add"),
                                   M(la, "alu.res", "vmac.rq")],
                                  min_start=max(0, mac + 1 - la)) + la
        em.add(body, rxw, chunks * L, min_start=max(0, mac - la))  # after the reads
        em.add(body, rout, chunks, min_start=max(0, last - la))
        em.loop_control(body, rx, f"{self.label}_x")
        n_iter = n_rows // chunks
        cycles += em.nest(pro, body, lambda tl: None, 1, n_iter, self.label, rx, ry)
        cycles += em.halt()
        ins = (s_l, x_l) if layer.vector_first else (x_l, s_l)
        return indent(em.lines), self.looped(em, LayerBinding(
            layer, 0, cycles, ins, out_l, h * w * c, 8, {"chunks": chunks, "rows": n_rows},
            None, blocks=tuple(em.blocks)))
