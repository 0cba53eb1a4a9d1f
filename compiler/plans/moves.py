"""Nearest upsampling and channel concatenation: affine copies by the LSU (the hand-over's
machinery, `compiler.plans.handover`), no arithmetic.

Both take any grid their producers share (`free_layout`, as adds do) and may read their inputs
where the producers left them. A position is one slot of P bytes (the producers' pitch, or C
rounded up to words); an upsampled position is its input's slot copied fy x fx times; a
concatenation copies each input's slot into its channels of the output's, inputs in order (an
input may spill into the next one's channels: that one's copy overwrites them).
"""

from __future__ import annotations

from compiler.errors import MemoryFitError
from compiler.layout import Layout
from compiler.plans.base import Emitter, Plan, align_up, indent
from compiler.plans.handover import Copy, Loop, emit_copy, shaped_copy
from compiler.program import LayerBinding


def _copies(src: int, dst: int, loops: list[Loop], run: int, imm_max: int,
            row: int | None = None) -> list[Copy]:
    """The copy as few `Copy`s as its loops allow: the outermost loop unrolled when there are
    more than a copy takes; whole rows by the vector unit when `row` is given."""
    copy = shaped_copy(src, dst, list(loops), run, imm_max, row)
    if copy is not None:
        return [copy]
    outer, rest = loops[0], loops[1:]
    return [c for i in range(outer.count)
            for c in _copies(src + i * outer.src, dst + i * outer.dst, rest, run, imm_max, row)]


class MovePlan(Plan):
    """Inputs and output as slots of P bytes on a grid; code: start, the copies, halt."""

    free_layout = True
    geometry: tuple[int, int, int] | None = None  # (rows, cols, position bits) of the inputs

    @property
    def vector_row(self) -> int | None:
        return self.row if self.zero_row is not None else None

    def input_grids(self) -> list[tuple[int, int, int]]:
        return [self.layer.in_grid]

    def slot(self, c: int) -> int:
        return align_up(c, 4)

    def layouts(self, scratch: int) -> tuple[list[Layout], Layout]:
        grids = self.input_grids()
        inputs, top = [], scratch
        for k, (c, h, w) in enumerate(grids):
            rows, cols, pos_bits = self.geometry or (h, w, 8 * self.slot(c))
            addr = self.external[k] if self.external else None
            la = Layout(top if addr is None else addr, (c, h, w), rows, cols, (0, 0),
                        pos_bits, 8)
            if addr is None:
                top = align_up(top + la.size, self.row)
            inputs.append(la)
        c, oh, ow = self.layer.out_shape
        out = Layout(top, (c, oh, ow), *self.out_grid(inputs), (0, 0),
                     8 * self.out_slot(inputs), 8)
        if out.addr + out.size > self.mem.limit:
            raise MemoryFitError(f"layer {self.layer.name}: its activations do not fit the data "
                                 f"memory of accelerator '{self.config.name}' "
                                 f"({self.mem.limit} bytes, {scratch} used by weights); "
                                 f"upsampling and concatenation are not tiled")
        return inputs, out

    def emit(self, scratch, enc):
        inputs, out = self.layouts(scratch)
        imm = enc.imm_range[1]
        em = Emitter(self, enc)
        cycles = em.start()
        for k, copy in enumerate(self.copies(inputs, out, imm)):
            cycles += emit_copy(em, copy, f"{self.label}_m{k}")
        cycles += em.halt()
        return indent(em.lines), LayerBinding(
            self.layer, 0, cycles, tuple(inputs), out, 0, 0,
            {"copies": len(em.blocks), "slot_bytes": out.pos_bits // 8}, None,
            blocks=tuple(em.blocks))


class ResizePlan(MovePlan):
    def out_grid(self, inputs):
        return self.layer.out_shape[1:]

    def out_slot(self, inputs):
        return inputs[0].pos_bits // 8

    def copies(self, inputs, out, imm):
        x, (fy, fx) = inputs[0], self.layer.factor
        _, h, w = x.shape
        p = out.pos_bits // 8
        ow = out.cols
        loops = [Loop(fy, 0, ow * p), Loop(h, x.cols * p, fy * ow * p), Loop(w, p, fx * p),
                 Loop(fx, 0, p)]
        return _copies(x.addr, out.addr, loops, p, imm, self.vector_row)


class ConcatPlan(MovePlan):
    def input_grids(self):
        return list(self.layer.in_shapes)

    def out_grid(self, inputs):
        return inputs[0].rows, inputs[0].cols

    def out_slot(self, inputs):
        return self.slot(self.layer.out_shape[0])

    def copies(self, inputs, out, imm):
        p = out.pos_bits // 8
        found = []
        for x, off in zip(inputs, self.layer.offsets):
            _, h, w = x.shape
            run = min(x.pos_bits // 8, p - off)
            loops = [Loop(h, x.cols * x.pos_bits // 8, out.cols * p),
                     Loop(w, x.pos_bits // 8, p)]
            found += _copies(x.addr, out.addr + off, loops, run, imm, self.vector_row)
        return found
