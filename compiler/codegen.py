"""TTA code generation: layer IR -> one program with an entry per layer + a data-memory image.

Every layer is a loop nest that ends in a halt; its cycle count is known exactly at compile time
(`LayerBinding.cycles`, checked against the RTL by the tests).

Convolutions and dense layers use the vector unit's dot-product MACs: a 32-bit word of packed
input channels (4 int8, 16 ternary codes or 32 bits) against a W-bit weight row gives W/32
output channels ("chunk") at once. One loop iteration computes P output positions x all output
channels of a lane group (G = W/8 accumulators): per position and chunk, one MAC per (tap, input
word), then one post-processing trigger requantizes (rq), ternarizes (ter) or binarizes (bin) the
whole group into the output. Narrow layers put P = G / (channels rounded to chunks) positions in
one group, so every precision reaches its peak with few output channels.

  body:   rin -> lsu.base                       (the window's first input word)
          off -> lsu.ldw; +Llsu: lsu.res -> vmac.x, row -> vmac.dmac   (one per cycle)
          rout -> vmac.rq | vmac.ter | vmac.bin (or per lane: get, + bias, stw for int32)
  loops:  x over output columns (P at a time), y over rows, groups unrolled.

Pooling and residual adds work on rows of int8 channels with the vector unit's aset / amax /
radd, then rq. Layouts (`Layout`) are position-major with the channels of a position packed
together; inputs carry their zero padding, written by the executor.

Memory: constants (weights, per-channel parameters) sit in the low banks, activations from the
next bank boundary up, so no instruction stalls on a bank conflict. Constants of all layers
stay resident when they fit;
otherwise each layer's are streamed (written by the executor before it runs). Activations that
do not fit run in tiles of output rows (`RowTiling`), the executor writing each tile's window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from compiler.errors import CompileError, MemoryFitError
from compiler.intsem import QMIN, pad_value
from compiler.layer_ir import Conv2d, Dense, Layer, Pool
from compiler.layout import Layout, RowTiling, pack_values as _pack
from compiler.schedule import Timeline, TimedMove as M
from hw.asm import Program, assemble
from hw.config import AccelConfig
from hw.isa import Encoding
from hw.units import DOT_PRECISIONS

DOT_OPS = {8: DOT_PRECISIONS["int8"], 2: DOT_PRECISIONS["ternary"], 1: DOT_PRECISIONS["binary"]}


@dataclass(frozen=True)
class ExecBlock:
    """Straight-line instructions of a layer and how often one run executes them: the static
    schedule the estimator counts events from."""

    start: int  # first instruction, relative to the layer's entry
    length: int
    count: int  # executions of each of its instructions per run (per row tile)
    exits: int = 0  # executions of its last instruction whose guarded jump falls through


@dataclass(frozen=True)
class LayerBinding:
    """Where one compiled layer lives on the accelerator."""

    layer: Layer
    entry: int  # first instruction
    cycles: int  # exact cycle count of one run
    inputs: tuple[Layout, ...]  # Add: two
    output: Layout
    macs: int  # useful multiply-accumulates (for utilization)
    mac_bits: int  # precision the vector unit runs at (8, 2, 1; 0 for row operations)
    tiling: dict = field(default_factory=dict)  # loop structure, for the manifest
    row_tiling: RowTiling | None = None  # inputs padded and written by the executor, per tile
    image: tuple = ()  # streamed weights: this layer's constants, written before each run
    blocks: tuple[ExecBlock, ...] = ()  # the layer's code with its execution counts

    @property
    def tiles(self) -> int:
        return self.row_tiling.tiles if self.row_tiling else 1


@dataclass
class CompiledProgram:
    config: AccelConfig
    program: Program
    listing: str  # assembly, labelled per layer
    image: list[tuple[int, bytes]] = field(default_factory=list)  # data-memory segments
    layers: dict[str, LayerBinding] = field(default_factory=dict)


class _Memory:
    """Constant data (weights, parameters) bump-allocated from the bottom; activations share
    one scratch area above them, since the host moves activations between layer runs."""

    def __init__(self, config: AccelConfig):
        self.config, self.row = config, config.vector_width // 8
        self.limit = config.dmem_bytes
        self.top = 0
        self.image: list[tuple[int, bytes]] = []

    def alloc(self, size: int, align: int, what: str, data: bytes | None = None) -> int:
        addr = -(-self.top // align) * align
        if addr + size > self.limit:
            raise MemoryFitError(
                f"{what}: {size} bytes do not fit the data memory of accelerator "
                f"'{self.config.name}' ({self.top} of {self.limit} bytes used)")
        self.top = addr + size
        if data is not None:
            self.image.append((addr, data))
        return addr


def mac_bits(w_bits: int, a_bits: int) -> int:
    """The dot-product precision a (weight, activation) pair runs at: int8 if either is 8."""
    return 8 if 8 in (w_bits, a_bits) else max(w_bits, a_bits)


def compile_layers(layers: list[Layer], config: AccelConfig,
                   stream_weights: bool | None = None) -> CompiledProgram:
    """Weights stay resident when all layers' constants fit beside the largest activations;
    otherwise (or with stream_weights=True) each layer's constants start at address 0 and the
    executor writes them before the layer runs."""
    if config.buses < 3 or not all(config.has_unit(u) for u in ("alu", "lsu", "vmac")):
        raise CompileError(f"accelerator '{config.name}': the code generator needs at least 3 "
                           f"buses and the alu, lsu and vmac units")
    if config.vector_width < 64:
        raise CompileError(f"accelerator '{config.name}': the code generator needs W >= 64")
    if stream_weights is None:
        try:
            return compile_layers(layers, config, False)
        except MemoryFitError:
            if len(layers) == 1:
                raise
            return compile_layers(layers, config, True)
    enc = Encoding(config)
    if stream_weights:
        emitted, plans = [], []
        for i, layer in enumerate(layers):
            mem = _Memory(config)
            plan = _plan(i, layer, config, mem)
            out = _emit_all([plan], mem, enc)[0]
            lines, binding = out
            emitted.append((lines, replace(binding, image=tuple(mem.image))))
            plans.append(plan)
        image = []
    else:
        mem = _Memory(config)
        plans = [_plan(i, layer, config, mem) for i, layer in enumerate(layers)]
        emitted = _emit_all(plans, mem, enc)
        image = mem.image
    listing: list[str] = []
    bindings: dict[str, LayerBinding] = {}
    for plan, (lines, binding) in zip(plans, emitted):
        row = config.vector_width // 8
        end = max(lay.addr + -(-lay.size // row) * row for lay in (*binding.inputs, binding.output))
        if end > config.dmem_bytes:
            raise MemoryFitError(f"layer {plan.layer.name}: its activations do not fit the data "
                               f"memory of accelerator '{config.name}' ({config.dmem_bytes} "
                               f"bytes, {binding.inputs[0].addr} used by weights); element-wise "
                               f"layers are not tiled")
        listing.append(f"# {plan.layer.name}: {type(plan.layer).__name__} {_describe(plan.layer)}")
        listing.extend(lines)
        bindings[plan.layer.name] = binding
    text = "\n".join(listing) + "\n"
    n_instr = sum(1 for line in listing if not line.endswith(":") and not line.startswith("#"))
    if n_instr > config.imem_depth:
        raise CompileError(f"the program needs {n_instr} instructions; accelerator "
                           f"'{config.name}' has {config.imem_depth}")
    program = assemble(text, enc, name="network")
    for plan in plans:
        b = bindings[plan.layer.name]
        bindings[plan.layer.name] = replace(b, entry=program.labels[plan.label])
    return CompiledProgram(config, program, text, image, bindings)


def _emit_all(plans: list["_Plan"], mem: "_Memory", enc: Encoding):
    # Activations start in a bank of their own: the LSU's activation loads and the vector
    # unit's weight reads then never meet in one bank, so the code never stalls.
    c = mem.config
    align = c.bank_bytes if c.dmem_banks > 1 else mem.row
    while True:  # emitting may add constants, which can move the activations' area up
        top = mem.top
        scratch = _align(top, align)
        emitted = [plan.emit(scratch, enc, 0) for plan in plans]
        if mem.top <= scratch:
            return emitted


def _describe(layer: Layer) -> str:
    if isinstance(layer, Dense):
        return f"{layer.in_shape} -> {layer.out_features} w{layer.w_bits}a{layer.a_bits}"
    if isinstance(layer, Conv2d):
        return (f"{layer.in_shape} -> {layer.out_shape} k={layer.kernel} s={layer.stride} "
                f"g={layer.groups} w{layer.w_bits}a{layer.a_bits}")
    if isinstance(layer, Pool):
        return f"{layer.kind} {layer.in_shape} -> {layer.out_shape} k={layer.kernel}"
    return f"{layer.shape}"


def _label(index: int, layer: Layer) -> str:
    return f"L{index}_" + re.sub(r"[^\w]", "_", layer.name)


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


def _tile_rows(plan: "_Plan", scratch: int, oh: int, in_rows, in_row_bytes: int,
               out_row_bytes: int) -> int:
    """The most output rows per tile whose input window and output fit above `scratch`."""
    row = plan.row
    for t in range(oh, 0, -1):
        end = _align(scratch + in_rows(t) * in_row_bytes, row) + _align(t * out_row_bytes, row)
        if end <= plan.mem.limit:
            return t
    raise MemoryFitError(
        f"layer {plan.layer.name}: even one output row does not fit the data memory of "
        f"accelerator '{plan.config.name}' ({plan.mem.limit} bytes, {scratch} used by weights "
        f"and constants; input row {in_row_bytes} B, output row {out_row_bytes} B)")


# --- planning: memory for constants, the loop structure -------------------------------------

class _Plan:
    """One layer's constants (allocated at planning) and its code (emitted once activations
    have their place)."""

    def __init__(self, index: int, layer: Layer, config: AccelConfig, mem: _Memory):
        self.index, self.layer, self.config, self.mem = index, layer, config, mem
        self.w = config.vector_width
        self.row = self.w // 8
        self.group = self.w // 8  # G: accumulator lanes per post-processing trigger
        self.chunk = self.w // 32  # L: output lanes per dot-product trigger
        self.lat = {u: config.latency(u) for u in ("alu", "lsu", "vmac")}
        self.label = _label(index, layer)
        self.pool: dict[int, int] = {}  # constant -> address

    def const_addr(self, value: int) -> int:
        value = int(value)
        if value not in self.pool:
            self.pool[value] = self.mem.alloc(4, 4, f"layer {self.layer.name}: constant",
                                              (value & 0xFFFFFFFF).to_bytes(4, "little"))
        return self.pool[value]


def _plan(index: int, layer: Layer, config: AccelConfig, mem: _Memory) -> "_Plan":
    if isinstance(layer, (Conv2d, Dense)):
        return _ConvPlan(index, layer, config, mem)
    return _RowPlan(index, layer, config, mem)


class _Emitter:
    """Builds one layer's code: a prologue, then loops whose bodies are scheduled timelines."""

    def __init__(self, plan: _Plan, enc: Encoding):
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

    def imm(self, value: int) -> str:
        if not self.lo <= value <= self.hi:
            raise CompileError(f"layer {self.plan.layer.name}: immediate {value} is outside "
                               f"the accelerator's short immediates [{self.lo}, {self.hi}]")
        return str(value)

    def value(self, tl: Timeline, value: int, dst: str, at: int = 0, extra=()) -> None:
        """Move a constant to `dst` (an immediate, or loaded from the constant pool; the
        prologue keeps lsu.base at 0), with `extra` moves at the same cycle."""
        if self.lo <= value <= self.hi:
            tl.place([M(at, str(value), dst), *(M(at, s, d) for s, d in extra)])
            return
        ll = self.plan.lat["lsu"]
        tl.place([M(0, str(self.plan.const_addr(value)), "lsu.ldw"),
                  M(ll, "lsu.res", dst), *(M(ll, s, d) for s, d in extra)])

    def block(self, tl: Timeline, label: str | None = None, count: int = 1,
              exits: int = 0) -> int:
        lines = tl.lines(halt=False) or ["nop"]
        if label:
            self.lines.append(f"{label}:")
        self.lines.extend(lines)
        self.blocks.append(ExecBlock(self.n_instr, len(lines), count, exits))
        self.n_instr += len(lines)
        return len(lines)

    def halt(self) -> int:
        self.lines.append("0 -> ctrl.halt")
        self.blocks.append(ExecBlock(self.n_instr, 1, 1))
        self.n_instr += 1
        return 1

    def loop_control(self, tl: Timeline, counter: str, label: str, min_start: int) -> None:
        """counter -= 1; jump back to `label` while it is not 0 (the jump ends the block)."""
        la = self.plan.lat["alu"]
        start = max(min_start, tl.end - 1 - (2 * la + 1))
        tl.place([M(0, counter, "alu.in1"), M(0, "-1", "alu.add"), M(la, "alu.res", counter),
                  M(la, "alu.res", "alu.in1"), M(la, "0", "alu.ne"), M(2 * la, "alu.res", "b0"),
                  M(2 * la + 1, f"?b0 @{label}", "ctrl.jump")], min_start=start)

    def add(self, tl: Timeline, reg: str, step: int, min_start: int = 0) -> None:
        if step == 0:
            return
        la = self.plan.lat["alu"]
        tl.place([M(0, reg, "alu.in1"), M(0, self.imm(step), "alu.add"), M(la, "alu.res", reg)],
                 min_start=min_start)


class _LoopNest:
    """y rows x (nx iterations of a body) for one group, with exact cycle accounting."""

    def __init__(self, em: _Emitter, ny: int, nx: int, name: str):
        self.em, self.ny, self.nx, self.name = em, ny, nx, name

    def emit(self, prologue: Timeline, body: Timeline, row_tail) -> int:
        """Emit prologue, loops and row tail; returns the cycles one run of them takes."""
        em = self.em
        p_len = em.block(prologue)
        rx, ry = self.rx, self.ry
        head = Timeline(em.plan.config)
        head.place([M(0, str(self.nx), rx)])
        h_len = em.block(head, f"{self.name}_y", self.ny)
        b_len = em.block(body, f"{self.name}_x", self.ny * self.nx, self.ny)
        tail = Timeline(em.plan.config)
        row_tail(tail)
        em.loop_control(tail, ry, f"{self.name}_y", 0)
        t_len = em.block(tail, None, self.ny, 1)
        return p_len + self.ny * (h_len + self.nx * b_len + t_len)


# --- convolutions and dense layers ---------------------------------------------------------

class _ConvPlan(_Plan):
    def __init__(self, index, layer, config, mem):
        super().__init__(index, layer, config, mem)
        conv = layer.as_conv() if isinstance(layer, Dense) else layer
        self.conv = conv
        name = layer.name
        if conv.w_bits == 1 and conv.groups > 1:
            raise CompileError(f"layer {name}: grouped convolution with binary weights is not "
                               f"supported (a binary weight cannot be 0)")
        self.bits = mac_bits(conv.w_bits, conv.a_bits)
        per_word = 32 // self.bits
        c, h, w = conv.in_shape
        o, oh, ow = conv.out_shape
        kh, kw = conv.kernel
        (_, sx), (_, pl, _, pr), (dy, dx) = conv.stride, conv.padding, conv.dilation
        self.words = -(-c // per_word)
        self.s_in = 4 * self.words  # bytes per input position
        out = conv.out
        self.out_kind = out.kind
        L, G = self.chunk, self.group
        self.n_groups = -(-o // G)
        oc = -(-o // L) * L
        # Positions per iteration: G / oc fill one post-processing group; narrow layers take
        # several groups (blocks) of the W accumulators, as many as the row has positions for.
        per_group = G // oc if (self.n_groups == 1 and out.kind != "int32") else 1
        self.blocks = max(1, min(self.w // G, ow // per_group)) if per_group > 1 else 1
        self.p = per_group * self.blocks
        self.oc = oc if per_group > 1 else G
        self.nx = -(-ow // self.p)
        self.cols = max(w + pl + pr, (self.nx * self.p - 1) * sx + (kw - 1) * dx + 1)
        self.ebits = {"int8": 8, "ternary": 2, "binary": 1, "int32": 32}[out.kind]
        self.out_unit = G * self.ebits // 8 if out.kind != "int32" else 4 * o  # bytes
        self.pos_bits = self.n_groups * G * self.ebits * self.blocks // self.p \
            if out.kind != "int32" \
            else 32 * o

        # Weight rows: per (group, chunk, tap) where the chunk's weights are not all zero.
        weight = conv.dense_weight().astype(np.int64)
        pad_ch = self.words * per_word - c
        wq = np.zeros((o, self.words * per_word, kh, kw), np.int64)
        wq[:, :c] = weight
        if self.bits == 1:  # pad channels read -1 (bit 0): weight +1, corrected in the bias
            wq[:, c:] = 1
        taps = [(ky, kx, word) for ky in range(kh) for kx in range(kw)
                for word in range(self.words)]
        self.tap_offset = {t: ((t[0] * dy) * self.cols + t[1] * dx) * self.s_in + 4 * t[2]
                           for t in taps}
        rows: list[np.ndarray] = []
        self.passes: list[list[tuple[int, list[tuple[tuple, int]]]]] = []  # group -> chunks
        for g in range(self.n_groups):
            chunks = []
            for q in range(min(G // L, -(-(o - g * G) // L))):
                chans = range(g * G + q * L, min(o, g * G + (q + 1) * L))
                entries = []
                for t in taps:
                    ky, kx, word = t
                    vals = np.zeros((L, per_word), np.int64)
                    vals[:len(chans)] = wq[list(chans), word * per_word:(word + 1) * per_word,
                                           ky, kx]
                    if self.bits == 1 and len(chans) < L:
                        vals[len(chans):] = 1
                    if not vals.any() and self.bits != 1 and entries:
                        continue  # all zero (grouped convolutions): nothing to add
                    entries.append((t, len(rows)))
                    rows.append(_pack(vals.reshape(-1), self.bits))
                chunks.append((q, entries))
            self.passes.append(chunks)
        data = b"".join(r.tobytes() for r in rows)
        base_row = mem.alloc(len(data), self.row, f"layer {name}: weights", data) // self.row
        self.passes = [[(q, [(t, base_row + r) for t, r in entries]) for q, entries in chunks]
                       for chunks in self.passes]
        self.macs = int(conv.weight.size) * oh * ow  # useful MACs
        self.bias = conv.bias.astype(np.int64) + (pad_ch * kh * kw if self.bits == 1 else 0)

    def emit(self, scratch: int, enc: Encoding, entry: int) -> tuple[list[str], LayerBinding]:
        conv, cfg, lat = self.conv, self.config, self.lat
        ll, lv, la = lat["lsu"], lat["vmac"], lat["alu"]
        G, L, P = self.group, self.chunk, self.p
        o, oh, ow = conv.out_shape
        (sy, sx), (kh, _), (dy, _) = conv.stride, conv.kernel, conv.dilation
        c = conv.in_shape[0]
        cols, fill = self.cols, pad_value(conv.a_bits)

        def in_rows(t: int) -> int:
            return (t - 1) * sy + (kh - 1) * dy + 1

        rows = _tile_rows(self, scratch, oh, in_rows, cols * self.s_in,
                          -(-self.nx * P * self.pos_bits // 8))
        in_l = Layout(scratch, (c, in_rows(rows), cols), in_rows(rows), cols, (0, 0),
                      32 * self.words, self.bits, fill)
        out_addr = _align(scratch + in_l.size, self.row)
        out_l = Layout(out_addr, (o, rows, ow), rows, self.nx * P, (0, 0), self.pos_bits,
                       min(self.ebits, 32), 0)
        em = _Emitter(self, enc)
        rin, rout, rx, ry = em.reg(), em.reg(), em.reg(), em.reg()
        out = conv.out
        op = {"int8": "rq", "ternary": "ter", "binary": "bin"}.get(out.kind)
        acc_op, start_op = DOT_OPS[self.bits]
        cycles = 0
        em.lines.append(f"{self.label}:")
        for g, chunks in enumerate(self.passes):
            # Prologue: the group's per-lane parameters, post-processing config, pointers.
            pro = Timeline(cfg)
            pro.place([M(0, "0", "lsu.base")])
            if out.kind != "int32":
                # Several positions per group repeat the pattern of oc lanes: set it once, then
                # replicate it over the group (brep, oc a power of two).
                lanes = self.oc if P > 1 else G
                assert P == 1 or lanes & (lanes - 1) == 0
                for j in range(lanes):
                    ch = g * G + j
                    if ch >= o:
                        continue
                    em.value(pro, int(self.bias[ch]), "vmac.prm", extra=[(str(j), "vmac.sbias")])
                    if out.kind == "int8":
                        em.value(pro, int(out.requant.multiplier[ch]), "vmac.prm",
                                 extra=[(str(j), "vmac.smul")])
                        em.value(pro, int(out.requant.shift[ch]), "vmac.prm",
                                 extra=[(str(j), "vmac.sshift")])
                    elif out.kind == "ternary":
                        em.value(pro, int(out.thresholds[ch]), "vmac.prm",
                                 extra=[(str(j), "vmac.smul")])
                if P > 1:
                    pro.place([M(0, str(lanes - 1), "vmac.brep")])
                if out.kind == "int8":
                    rq = out.requant
                    em.value(pro, (rq.lo & 0xFF) | ((rq.hi & 0xFF) << 8), "vmac.cfg")
            out_start = {"int8": out_addr // self.row + g, "int32": out_addr}.get(
                out.kind, out_addr + g * self.out_unit)
            em.value(pro, in_l.addr, rin)
            em.value(pro, out_start, rout)
            em.value(pro, rows, ry)
            pro.barrier()

            # Body: P positions x chunks x taps, then the group's post-processing.
            body = Timeline(cfg)
            first = True
            for p in range(P):
                for q, entries in chunks:
                    for k, (t, wrow) in enumerate(entries):
                        off = p * sx * self.s_in + self.tap_offset[t]
                        chain = [M(0, em.imm(off), "lsu.ldw"), M(ll, "lsu.res", "vmac.x"),
                                 M(ll, em.imm(wrow), f"vmac.{start_op if k == 0 else acc_op}")]
                        if k == 0:
                            chain.append(M(ll, em.imm(p * self.oc + q * L), "vmac.base"))
                        if first:
                            chain.append(M(0, rin, "lsu.base"))
                            first = False
                        body.place(chain)
            if op:  # one trigger per block of G accumulators, to consecutive output units
                last_read = body.place([M(0, "0", "vmac.base"), M(0, rout, f"vmac.{op}")])
                unit = 1 if out.kind == "int8" else self.out_unit
                for k in range(1, self.blocks):
                    start = body.place([M(0, rout, "alu.in1"), M(0, em.imm(k * unit), "alu.add"),
                                        M(la, em.imm(k * G), "vmac.base"),
                                        M(la, "alu.res", f"vmac.{op}")])
                    last_read = max(last_read, start)
            else:  # int32: per lane, accumulator + bias through the ALU, stored by the LSU
                last_read = 0
                for lane in range(min(G, o - g * G)):
                    ch = g * G + lane
                    b = int(self.bias[ch])
                    chain = [M(0, str(lane), "vmac.get"), M(lv, "vmac.res", "alu.in1"),
                             M(lv + la, "alu.res", "lsu.data"), M(lv + la, rout, "lsu.base"),
                             M(lv + la, em.imm(4 * ch), "lsu.stw")]
                    if em.lo <= b <= em.hi:
                        chain.append(M(lv, str(b), "alu.add"))
                    else:  # from the constant pool, at an absolute address (base 0)
                        chain += [M(lv - ll, "0", "lsu.base"),
                                  M(lv - ll, em.imm(self.const_addr(b)), "lsu.ldw"),
                                  M(lv, "lsu.res", "alu.add")]
                    first_cycle = body.place(chain)
                    last_read = first_cycle + max(0, ll - lv) + lv + la
            em.add(body, rin, P * sx * self.s_in)
            step_out = self.n_groups * self.blocks if out.kind == "int8" else \
                (self.n_groups * self.out_unit * self.blocks if out.kind != "int32"
                 else self.out_unit)
            em.add(body, rout, step_out, min_start=max(0, last_read - la))
            em.loop_control(body, rx, f"{self.label}_g{g}_x", 0)

            def row_tail(tl, rin=rin):
                em.add(tl, rin, (sy * in_l.cols - self.nx * P * sx) * self.s_in)

            nest = _LoopNest(em, rows, self.nx, f"{self.label}_g{g}")
            nest.rx, nest.ry = rx, ry
            cycles += nest.emit(pro, body, row_tail)
        cycles += em.halt()
        tiles = -(-oh // rows)
        tiling = RowTiling(rows, tiles, rows * sy, in_rows(rows), conv.padding, fill, cycles)
        binding = LayerBinding(self.layer, entry, cycles * tiles, (in_l,), out_l, self.macs,
                               self.bits, blocks=tuple(em.blocks), tiling=
                               {"positions_per_iteration": P, "groups": self.n_groups,
                                "accumulator_blocks": self.blocks,
                                "chunks": [len(c) for c in self.passes],
                                "macs_per_iteration": sum(len(e) for c in self.passes
                                                          for _, e in c) * P,
                                "row_tiles": tiles, "rows_per_tile": rows}, row_tiling=tiling)
        return _indent(em.lines, self.label), binding


# --- pooling and element-wise adds on int8 rows --------------------------------------------

class _RowPlan(_Plan):
    def __init__(self, index, layer, config, mem):
        super().__init__(index, layer, config, mem)
        if layer.out.kind != "int8":
            raise CompileError(f"layer {layer.name}: {type(layer).__name__} writes int8 only")

    def emit(self, scratch: int, enc: Encoding, entry: int) -> tuple[list[str], LayerBinding]:
        layer, cfg, G = self.layer, self.config, self.group
        la = self.lat["alu"]
        c, h, w = layer.in_shape
        o, oh, ow = layer.out_shape
        if isinstance(layer, Pool):  # one row of G channels per position and channel group
            n_groups = -(-c // G)
            (kh, kw), (sy, sx), (_, pl, _, pr) = layer.kernel, layer.stride, layer.padding
            fill = QMIN if layer.kind == "max" else 0
            cols = w + pl + pr

            def in_rows(t: int) -> int:
                return (t - 1) * sy + kh

            pos = n_groups * G  # bytes per position
            rows = _tile_rows(self, scratch, oh, in_rows, cols * pos, ow * pos)
            in_l = Layout(scratch, (c, in_rows(rows), cols), in_rows(rows), cols, (0, 0),
                          8 * pos, 8, fill)
            inputs = [in_l]
            top = _align(scratch + in_l.size, self.row)
            out_l = Layout(top, (o, rows, ow), rows, ow, (0, 0), 8 * pos, 8, 0)
            lanes = None
        else:  # element-wise: the dense HWC bytes, a row (G values) at a time
            n_groups, (kh, kw), (sy, sx) = 1, (1, 1), (1, 1)
            n_rows = -(-c * h * w // G)
            cols = n_rows  # the loop walks rows as one line of "positions"
            size = n_rows * self.row
            inputs = [Layout(scratch + k * size, (c, h, w), h, w, (0, 0), 8 * c, 8) for k in (0, 1)]
            in_l = inputs[0]
            out_l = Layout(scratch + 2 * size, (c, h, w), h, w, (0, 0), 8 * c, 8)
            oh, ow, lanes, rows = 1, n_rows, G, 1
        em = _Emitter(self, enc)
        rin, rout, rx, ry = em.reg(), em.reg(), em.reg(), em.reg()
        rq = layer.out.requant
        bypass = rq is None  # max pooling: values pass unchanged
        lo, hi = (QMIN, 127) if bypass else (rq.lo, rq.hi)
        cycles = 0
        em.lines.append(f"{self.label}:")
        for g in range(n_groups):
            pro = Timeline(cfg)
            pro.place([M(0, "0", "lsu.base"), M(0, "0", "vmac.base")])
            for j in range(lanes or min(G, c - g * G)):
                em.value(pro, 0, "vmac.prm", extra=[(str(j), "vmac.sbias")])
                if not bypass:
                    em.value(pro, int(rq.multiplier[0]), "vmac.prm", extra=[(str(j), "vmac.smul")])
                    em.value(pro, int(rq.shift[0]), "vmac.prm", extra=[(str(j), "vmac.sshift")])
            em.value(pro, (lo & 0xFF) | ((hi & 0xFF) << 8) | (bypass << 16), "vmac.cfg")
            em.value(pro, in_l.addr // self.row + g, rin)
            em.value(pro, out_l.addr // self.row + g, rout)
            em.value(pro, rows, ry)
            pro.barrier()
            body = Timeline(cfg)
            if isinstance(layer, Pool):
                ops = [("aset" if i == 0 else ("amax" if layer.kind == "max" else "radd"),
                        (ky * cols + kx) * n_groups, 1)
                       for i, (ky, kx) in enumerate((a, b) for a in range(kh) for b in range(kw))]
            else:
                b_off = (inputs[1].addr - in_l.addr) // self.row
                ops = [("aset", 0, None)] + ([("radd", 0, layer.ka - 1)] if layer.ka != 1 else [])
                ops.append(("radd", b_off, layer.kb))
            for vop, off, prm in ops:
                chain = [M(0, rin, "alu.in1"), M(0, em.imm(off), "alu.add"),
                         M(la, "alu.res", f"vmac.{vop}")]
                if vop == "radd":
                    if not em.lo <= prm <= em.hi:
                        raise CompileError(f"layer {layer.name}: factor {prm} too large")
                    chain.append(M(la, str(prm), "vmac.prm"))
                body.place(chain)
            post = body.place([M(0, rout, "vmac.rq")])
            em.add(body, rin, sx * n_groups)
            em.add(body, rout, n_groups, min_start=max(0, post - la))
            em.loop_control(body, rx, f"{self.label}_g{g}_x", 0)

            def row_tail(tl, rin=rin):
                em.add(tl, rin, (sy * cols - ow * sx) * n_groups)

            nest = _LoopNest(em, rows, ow, f"{self.label}_g{g}")
            nest.rx, nest.ry = rx, ry
            cycles += nest.emit(pro, body, row_tail)
        cycles += em.halt()
        tiling = None
        if isinstance(layer, Pool):
            tiles = -(-oh // rows)
            tiling = RowTiling(rows, tiles, rows * sy, in_rows(rows), layer.padding, fill, cycles)
            cycles *= tiles
        return _indent(em.lines, self.label), LayerBinding(
            layer, entry, cycles, tuple(inputs), out_l, 0, 0,
            {"groups": n_groups, "taps": len(ops),
             "row_tiles": tiling.tiles if tiling else 1}, tiling, blocks=tuple(em.blocks))


def _indent(lines: list[str], label: str) -> list[str]:
    """Labels at the margin, instructions indented."""
    return [line if line.endswith(":") else f"    {line}" for line in lines]
