"""What every layer's code generation shares: the data-memory allocator, the emitter of scheduled
blocks with exact execution counts, the row/column loop nest, and parameter rows.

A plan is made in two steps: at construction it allocates its constants (weights, parameter
rows); `emit(scratch, enc)` then writes its code once the activations have their place (from
`scratch` up) and returns its lines and `LayerBinding`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from compiler.errors import CompileError, MemoryFitError
from compiler.layer_ir import Layer
from compiler.plans.handover import emit_copy
from compiler.plans.lanes import LaneCopy, emit_lanes
from compiler.program import ExecBlock
from compiler.schedule import Timeline, TimedMove as M
from hw.config import AccelConfig
from hw.isa import Encoding


class Memory:
    """Constant data (weights, parameters) bump-allocated from the bottom; activations share
    one scratch area above them, since the host moves activations between layer runs. The last
    row stays free: the activation window reads a row past the one it starts in."""

    def __init__(self, config: AccelConfig, base: int = 0, offchip=None, overlap: bool = True,
                 share: bool = True):
        self.config, self.row = config, config.vector_width // 8
        self.limit = config.dmem_bytes - self.row
        self.top = base
        self.offchip = offchip  # a streamed layer's: where constants it loads itself go
        self.overlap = overlap  # load the next weight segment while one computes
        self.image: list[tuple[int, bytes]] = []
        self.pool: dict[bytes, int] = {}  # constant rows shared by content -> row
        self.share = share  # False: every parameter row its own (fault injection)

    def alloc(self, size: int, align: int, what: str, data: bytes | None = None) -> int:
        addr = align_up(self.top, align)
        if addr + size > self.limit:
            raise MemoryFitError(
                f"{what}: {size} bytes do not fit the data memory of accelerator "
                f"'{self.config.name}' ({self.top} of {self.limit} bytes used)")
        self.top = addr + size
        if data is not None:
            self.image.append((addr, data))
        return addr

    def rows(self, data: bytes, what: str) -> int:
        """Whole rows of constant data; returns the first row."""
        return self.alloc(len(data), self.row, what, data) // self.row

    def shared_row(self, data: bytes, what: str) -> int:
        """One row of constant data, shared with any identical row already placed."""
        if not self.share:
            return self.rows(data, what)
        if data not in self.pool:
            self.pool[data] = self.rows(data, what)
        return self.pool[data]


def _bank_bytes(bias, mul=None, shift=None) -> dict[str, bytes]:
    """Per-lane bank values as the rows' bytes: bias and mul int32 words, shift a byte each."""
    out = {"bias": np.asarray(bias, np.int64).astype("<u4").tobytes()}
    if mul is not None:
        out["mul"] = np.asarray(mul, np.int64).astype("<u4").tobytes()
    if shift is not None:
        out["shift"] = (np.asarray(shift, np.int64) & 63).astype(np.uint8).tobytes()
    return out


def align_up(n: int, a: int) -> int:
    return -(-n // a) * a


def mac_bits(w_bits: int, a_bits: int) -> int:
    """The precision a (weight, activation) pair runs at: int8 if either is 8."""
    return 8 if 8 in (w_bits, a_bits) else max(w_bits, a_bits)


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class TileIO:
    """A row-tiled layer's tiles looped in its code: window t (rows `load` from data row
    `first_in`) from off-chip `ext_in + t * step_in`, tile t's output rows (`store` rows from
    `first_out`) to `ext_out + t * step_out`."""

    tiles: int
    ext_in: int
    step_in: int
    load: int
    first_in: int
    ext_out: int
    step_out: int
    store: int
    first_out: int


class Plan:
    """One layer's constants (allocated at planning) and its code (emitted once activations
    have their place)."""

    free_layout = False  # takes any grid of its producers (`geometry`), reads inputs in place

    def __init__(self, index: int, layer: Layer, config: AccelConfig, mem: Memory):
        self.index, self.layer, self.config, self.mem = index, layer, config, mem
        self.w = config.vector_width
        self.row = self.w // 8
        self.group = self.w // 8  # G: accumulator lanes per post-processing trigger
        self.chunk = self.w // 32  # L: output lanes of a dot-product trigger
        self.lat = {u: config.latency(u) for u in ("alu", "lsu", "vmac")}
        self.label = f"L{index}_" + re.sub(r"[^\w]", "_", layer.name)
        self.preload: tuple[int, int, int] | None = None  # (off-chip address, rows, first
        #                                                   data row) of streamed constants
        self.preload_top: int | None = None  # constants the layer loads when it starts end here
        self.dma_segments = False  # its weights come in segments it loads itself
        self.overlap = False  # ... each while the previous one computes
        self.handover: list = []  # copies of its output into its consumers' inputs (Copy)
        self.external: tuple | None = None  # with free_layout: inputs read where they lie
        self.falls_through = False  # the next layer's code follows (no halt)
        self.load_inputs: list[tuple[int, int, int]] = []  # (off-chip address, rows, first
        #                                                     row): inputs the DMA brings in
        self.store_output: tuple[int, int, int] | None = None  # ... the output it takes out
        self.tile_io: TileIO | None = None  # its row tiles looped in its own code
        self.handover_cycles = 0
        self.handover_to: list[str] = []  # the consumer of each hand-over copy
        self.handover_code: dict[str, int] = {}  # instructions handing over to each consumer
        self.zero_row: int | None = None  # a row of zeros (the vector unit's copies need one)
        self.fill_rows: dict[int, int] = {}  # byte -> a row of it (padding the copies write)
        self.compact = False  # loop wherever code repeats (the program is past the memory)

    def adopt_grid(self, cols: int, pos_bits: int) -> bool:
        """Read its input from a grid `cols` positions wide of `pos_bits` positions; False
        when it cannot."""
        return False

    def output_grid(self) -> tuple[int, int, int, int] | None:
        """(rows, columns, position bits, element bits) of the output it writes when it runs
        whole, if its plan fixes them."""
        return None

    def lay_out_input(self, cols: int, lead: int) -> bool:
        """Read its input from a grid `cols` positions wide starting `lead` bytes into its
        scratch area; False when it cannot."""
        return False

    def looped(self, em: "Emitter", binding):
        """The binding of code whose row tiles loop in it (`tile_io`): its cycles from its
        blocks' counts, its tiling marked as run in code."""
        if self.tile_io is None or binding.row_tiling is None:
            return binding
        return replace(binding, cycles=em.total_cycles(),
                       row_tiling=replace(binding.row_tiling, in_code=True))

    def param_rows(self, bias: np.ndarray, mul: np.ndarray | None = None,
                   shift: np.ndarray | None = None) -> dict[str, list[int]]:
        """One group's per-lane banks as rows (bias and mul: 4 rows of int32 words, shift: a
        row of bytes), identical rows shared; returns each bank's rows, part by part."""
        out = {}
        for bank, data in _bank_bytes(bias, mul, shift).items():
            out[bank] = [self.mem.shared_row(data[k:k + self.row],
                                             f"layer {self.layer.name}: {bank} row")
                         for k in range(0, len(data), self.row)]
        return out

    def uniform_param_rows(self, sets: list[tuple]) -> list[dict[str, list[int]]]:
        """Several groups' banks (each (bias, mul, shift)), set r's rows `param_stride` rows
        after set r - 1's in one block: a loop over groups reads them from a moving base
        (the vector unit's wb)."""
        banks = [_bank_bytes(*values) for values in sets]
        per_set = b"".join(banks[0].values())
        self.param_stride = len(per_set) // self.row
        first = self.mem.rows(b"".join(b"".join(b.values()) for b in banks),
                              f"layer {self.layer.name}: parameter rows")
        out = []
        for r, b in enumerate(banks):
            at, rows = first + r * self.param_stride, {}
            for bank, data in b.items():
                rows[bank] = list(range(at, at + len(data) // self.row))
                at += len(data) // self.row
            out.append(rows)
        return out

    def tile_rows(self, scratch: int, oh: int, in_rows, in_row_bytes: int,
                  out_row_bytes: int) -> int:
        """The most output rows per tile whose input window and output fit above `scratch`."""
        row = self.row
        for t in range(oh, 0, -1):
            end = align_up(scratch + in_rows(t) * in_row_bytes, row) + align_up(
                t * out_row_bytes, row)
            if end <= self.mem.limit:
                return t
        raise MemoryFitError(
            f"layer {self.layer.name}: even one output row does not fit the data memory of "
            f"accelerator '{self.config.name}' ({self.mem.limit} bytes, {scratch} used by "
            f"weights and constants; input row {in_row_bytes} B, output row {out_row_bytes} B)")


class Emitter:
    """Builds one layer's code: a prologue, then loops whose bodies are scheduled timelines."""

    def __init__(self, plan: Plan, enc: Encoding):
        self.plan, self.enc = plan, enc
        self.lines: list[str] = []
        self.blocks: list[ExecBlock] = []
        self.n_instr = 0
        self.regs = iter(range(1, plan.config.registers))
        self.lo, self.hi = enc.imm_range

    def reg(self) -> str:
        try:
            return f"r{next(self.regs)}"
        except StopIteration:
            raise CompileError(f"layer {self.plan.layer.name}: out of registers") from None

    def regs_for(self, purpose: str, n: int) -> tuple[str, ...]:
        """n registers kept for one purpose over the layer's code (each loop of that kind
        uses them in turn, none live across another)."""
        kept = self.__dict__.setdefault("_kept", {})
        if purpose not in kept:
            kept[purpose] = tuple(self.reg() for _ in range(n))
        return kept[purpose]

    def imm(self, value: int) -> str:
        if not self.lo <= value <= self.hi:
            raise CompileError(f"layer {self.plan.layer.name}: immediate {value} is outside "
                               f"the accelerator's short immediates [{self.lo}, {self.hi}]")
        return str(value)

    def value(self, tl: Timeline, value: int, dst: str, at: int = 0, extra=()) -> None:
        """Move a constant to `dst`, with `extra` moves at the same cycle: an immediate, or
        built on the ALU from immediates (shift in the next piece, or it in) when it does not
        fit the short immediates."""
        if self.lo <= value <= self.hi:
            tl.place([M(at, str(value), dst), *(M(at, s, d) for s, d in extra)])
            return
        la, bits = self.plan.lat["alu"], self.enc.imm_bits - 1
        x, pieces = ((value + 2**31) % 2**32) - 2**31, []
        while not self.lo <= x <= self.hi:
            pieces.append(x & ((1 << bits) - 1))
            x >>= bits
        chain, t, src = [], 0, str(x)
        for piece in reversed(pieces):
            chain += [M(t, src, "alu.in1"), M(t, str(bits), "alu.shl"),
                      M(t + la, "alu.res", "alu.in1"), M(t + la, str(piece), "alu.or")]
            t, src = t + 2 * la, "alu.res"
        tl.place(chain + [M(t, src, dst), *(M(t, s, d) for s, d in extra)])

    def load_params(self, tl: Timeline, rows: dict[str, list[int]]) -> None:
        """lbias / lmul (4 parts each) and lshift from parameter rows."""
        for bank, parts in rows.items():
            if bank == "shift":
                tl.place([M(0, self.imm(parts[0]), "vmac.lshift")])
                continue
            for q, row in enumerate(parts):
                tl.place([M(0, str(q), "vmac.prm"), M(0, self.imm(row), f"vmac.l{bank}")])

    def block(self, tl: Timeline, label: str | None = None, count: int = 1,
              exits: int = 0, stall: int = 0, events: tuple = ()) -> int:
        """Append a block; returns the cycles one execution of it takes."""
        lines = tl.lines(halt=False) or ["nop"]
        if label:
            self.lines.append(f"{label}:")
        self.lines.extend(lines)
        self.blocks.append(ExecBlock(self.n_instr, len(lines), count, exits, stall, events))
        self.n_instr += len(lines)
        return len(lines) + stall

    def start(self) -> int:
        """The layer's label and, when its constants come from the off-chip memory, their
        load into the rows from its first. Returns the cycles it takes."""
        self.lines.append(f"{self.plan.label}:")
        cycles = 0
        if self.plan.preload is not None:
            cycles += self.dma_load(*self.plan.preload)
        for ext, n, first in self.plan.load_inputs:  # the run's input, from off-chip memory
            cycles += self.dma_load(ext, n, first)
        io = self.plan.tile_io
        if io is not None:  # the tile loop's registers, then each tile's window by DMA
            self.r_tile, self.r_in, self.r_out = self.reg(), self.reg(), self.reg()
            pro = Timeline(self.plan.config)
            self.value(pro, io.tiles, self.r_tile)
            self.value(pro, io.ext_in, self.r_in)
            self.value(pro, io.ext_out, self.r_out)
            cycles += self.block(pro)
            self.tile_from = len(self.blocks)
            self.lines.append(f"{self.plan.label}_tile:")
            cycles += self.dma_trigger(self.r_in, io.load, io.first_in) + \
                self.dma_wait(io.load, 0)
        return cycles

    def dma_trigger(self, ext: int | str, n: int, first: int | str, op: str = "load") -> int:
        """A DMA load of n rows from off-chip address ext into rows first.. (or a store of them
        there), either given as a register; returns cycles."""
        c = self.plan.config
        setup = Timeline(c)
        if isinstance(ext, str):
            setup.place([M(0, ext, "dma.ext")])
        else:
            self.value(setup, ext, "dma.ext")
        self.value(setup, n, "dma.shape")
        setup.barrier()
        setup.place([M(0, first if isinstance(first, str) else self.imm(first), f"dma.{op}")])
        bits = n * c.vector_width
        events = (("dmem_write_bits", bits), ("offchip_read_bits", bits)) if op == "load" else \
            (("dmem_read_bits", bits), ("offchip_write_bits", bits))
        return self.block(setup, events=events)

    def dma_wait(self, n: int, gap: int) -> int:
        """The wait for a load of n rows triggered `gap` cycles before it (after the trigger's
        own): it stalls until the last row has landed, latency + (n - 1) * cpr cycles after the
        trigger (hw/ISA.md). Returns cycles."""
        c = self.plan.config
        stall = max(0, c.offchip.latency_cycles
                    + (n - 1) * c.offchip.cycles_per_row(c.vector_width) - gap)
        wait = Timeline(c)
        wait.place([M(0, "0", "dma.wait")])
        return self.block(wait, stall=stall,
                          events=(("stall_cycles", stall), ("dma_stall_cycles", stall)))

    def dma_load(self, ext: int, n: int, first: int) -> int:
        """A load waited for at once."""
        return self.dma_trigger(ext, n, first) + self.dma_wait(n, 0)

    def halt(self) -> int:
        """The end of the layer's code: the hand-over of its output to the consumers that run
        next on the accelerator, then a halt, or nothing when the next layer's code follows."""
        plan = self.plan
        plan.handover_cycles, plan.handover_code = 0, {}
        for k, (copy, to) in enumerate(zip(plan.handover, plan.handover_to)):
            before = self.n_instr
            plan.handover_cycles += (emit_lanes if isinstance(copy, LaneCopy) else emit_copy)(
                self, copy, f"{plan.label}_h{k}")
            plan.handover_code[to] = plan.handover_code.get(to, 0) + self.n_instr - before
        cycles = plan.handover_cycles
        if plan.store_output is not None:  # a result the host reads, to off-chip memory
            ext, n, first = plan.store_output
            cycles += self.dma_trigger(ext, n, first, "store") + self.dma_wait(n, 0)
        if plan.tile_io is not None:
            cycles += self._tile_end(plan.tile_io)
        return cycles if plan.falls_through else cycles + self._halt()

    def _tile_end(self, io: TileIO) -> int:
        """The tile's rows to off-chip memory, the addresses on, and the jump back; every
        block since the tile's start runs once per tile."""
        cycles = self.dma_trigger(self.r_out, io.store, io.first_out, "store") + \
            self.dma_wait(io.store, 0)
        self.repeat(self.tile_from, io.tiles)
        tail = Timeline(self.plan.config)
        for reg, step in ((self.r_in, io.step_in), (self.r_out, io.step_out)):
            if self.lo <= step <= self.hi:
                self.add(tail, reg, step)
            else:
                tmp = self.reg()
                self.value(tail, step, tmp)
                tail.barrier()
                la = self.plan.lat["alu"]
                tail.place([M(0, reg, "alu.in1"), M(0, tmp, "alu.add"), M(la, "alu.res", reg)])
        self.loop_control(tail, self.r_tile, f"{self.plan.label}_tile")
        return cycles + self.block(tail, count=io.tiles, exits=1)

    def repeat(self, since: int, times: int) -> None:
        """The blocks emitted since block `since` run `times` times (a loop around them)."""
        self.blocks[since:] = [
            ExecBlock(b.start, b.length, b.count * times, b.exits * times, b.stall, b.events)
            for b in self.blocks[since:]]

    def alu(self, tl: Timeline, a: str, op: str, b: str | int, dst: str,
            min_start: int = 0) -> int:
        """dst = a <op> b on the ALU (b a register or an immediate); returns the cycle of its
        trigger."""
        la = self.plan.lat["alu"]
        b = b if isinstance(b, str) else self.imm(b)
        return tl.place([M(0, a, "alu.in1"), M(0, b, f"alu.{op}"), M(la, "alu.res", dst)],
                        min_start=min_start)

    def total_cycles(self) -> int:
        """Cycles of one run of the code emitted so far, from its blocks' counts."""
        return sum((b.length + b.stall) * b.count for b in self.blocks)

    def _halt(self) -> int:
        self.lines.append("0 -> ctrl.halt")
        self.blocks.append(ExecBlock(self.n_instr, 1, 1))
        self.n_instr += 1
        return 1

    def loop_control(self, tl: Timeline, counter: str, label: str) -> None:
        """b0 = (counter != 1), counter -= 1, wherever the ALU and two buses are free; then the
        jump back to `label` while b0 holds, which ends the block (in the cycle of its last
        other move)."""
        la = self.plan.lat["alu"]
        start = tl.place([M(0, counter, "alu.in1"), M(0, "1", "alu.ne"), M(la, "alu.res", "b0"),
                          M(la + 1, counter, "alu.in1"), M(la + 1, "-1", "alu.add"),
                          M(2 * la + 1, "alu.res", counter)])
        tl.place([M(0, f"?b0 @{label}", "ctrl.jump")], min_start=max(tl.end - 1, start + la + 1))

    def add(self, tl: Timeline, reg: str, step: int, min_start: int = 0) -> None:
        if step == 0:
            return
        la = self.plan.lat["alu"]
        tl.place([M(0, reg, "alu.in1"), M(0, self.imm(step), "alu.add"), M(la, "alu.res", reg)],
                 min_start=min_start)

    def nest(self, prologue: Timeline, body: Timeline, row_tail, ny: int, nx: int, name: str,
             rx: str, ry: str) -> int:
        """Prologue, then ny rows of nx bodies, each row ended by `row_tail(timeline)`; the
        body must end in its loop control on rx. Returns the cycles one run of it takes."""
        p_len = self.block(prologue)
        head = Timeline(self.plan.config)
        head.place([M(0, str(nx), rx)])
        h_len = self.block(head, f"{name}_y", ny)
        b_len = self.block(body, f"{name}_x", ny * nx, ny)
        tail = Timeline(self.plan.config)
        row_tail(tail)
        self.loop_control(tail, ry, f"{name}_y")
        t_len = self.block(tail, None, ny, 1)
        return p_len + ny * (h_len + nx * b_len + t_len)


def indent(lines: list[str]) -> list[str]:
    """Labels at the margin, instructions indented."""
    return [line if line.endswith(":") else f"    {line}" for line in lines]
