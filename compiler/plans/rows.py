"""Pooling, residual adds and per-channel affine layers: operations on whole rows of int8 values.

Each iteration reads rows into G = W/8 accumulator lanes (aset), combines more rows into them
(amax for max pooling, radd for sums), then requantizes the group into one output row (rq), with
the per-lane parameters loaded from parameter rows. Pooling keeps one row per position and
channel group (lanes = channels); adds and affine layers walk the tensor's rows in order.

  body:   rin (+ offset) -> vmac.aset / amax / radd   (per tap or operand)
          rout -> vmac.rq;  rin += step, rout += groups
"""

from __future__ import annotations

import numpy as np

from compiler.errors import CompileError, MemoryFitError
from compiler.intsem import QMIN
from compiler.layout import Layout, RowTiling
from compiler.plans.base import Emitter, Plan, align_up, indent, next_pow2
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
        layer, cfg, la = self.layer, self.config, self.lat["alu"]
        rq = layer.out.requant
        bypass = rq is None
        lo, hi = getattr(layer, "clip", (QMIN, 127)) if bypass else (rq.lo, rq.hi)
        em = Emitter(self, enc)
        rin, rout, rx, ry = em.reg(), em.reg(), em.reg(), em.reg()
        cycles = em.start()
        for g in range(n_groups):
            pro = Timeline(cfg)
            pro.place([M(0, "0", "vmac.base")])
            em.load_params(pro, params[g % len(params)])
            em.value(pro, (lo & 0xFF) | ((hi & 0xFF) << 8) | (bypass << 16), "vmac.cfg")
            em.value(pro, inputs[0].addr // self.row + g, rin)
            em.value(pro, out_l.addr // self.row + g, rout)
            em.value(pro, ny, ry)
            pro.barrier()
            body = Timeline(cfg)
            for vop, off, prm in ops:
                chain = [M(0, rin, "alu.in1"), M(0, em.imm(off), "alu.add"),
                         M(la, "alu.res", f"vmac.{vop}")]
                if prm is not None:
                    chain.append(M(la, em.imm(prm), "vmac.prm"))
                body.place(chain)
            post = body.place([M(0, rout, "vmac.rq")])
            em.add(body, rin, step)
            em.add(body, rout, n_groups, min_start=max(0, post - la))
            em.loop_control(body, rx, f"{self.label}_g{g}_x")

            def row_tail(tl, rin=rin):
                em.add(tl, rin, row_step)

            cycles += em.nest(pro, body, row_tail, ny, nx, f"{self.label}_g{g}", rx, ry)
        cycles += em.halt()
        if tiling is not None:
            tiling = RowTiling(tiling.rows, tiling.tiles, tiling.step, tiling.in_rows,
                               tiling.padding, tiling.fill, cycles)
            cycles *= tiling.tiles
        info = {**info, "groups": n_groups, "taps": len(ops),
                "row_tiles": tiling.tiles if tiling else 1}
        return indent(em.lines), self.looped(em, LayerBinding(
            layer, 0, cycles, inputs, out_l, 0, 0, info, tiling, blocks=tuple(em.blocks)))


class PoolPlan(RowPlan):
    """Max and average pooling: one row per position and group of G channels."""

    def emit(self, scratch: int, enc: Encoding):
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
        for f in (layer.ka, layer.kb):
            Emitter(self, enc).imm(f)
        ops = [("aset", 0, None)] + ([("radd", 0, layer.ka - 1)] if layer.ka != 1 else [])
        ops.append(("radd", (inputs[1].addr - inputs[0].addr) // self.row, layer.kb))
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
