"""TTA code generation: layer IR -> one program with an entry per layer + a data-memory image.

Each layer is straight-line code that ends in a halt, so its cycle count is known exactly at
compile time. Per output position and lane group of output channels:

  MAC chain per input tap:   act address -> lsu.ldb;  +Llsu: lsu.res -> vmac.x, row -> vmac.mac
  int8 outputs:              row -> vmac.rq: bias, requantize and clip all lanes of the group
                             at once into one output row (parameters set once per group)
  int32 outputs:             lane -> vmac.get; bias -> lsu.ldw; acc + bias -> lsu.stw

Taps that fall into zero padding are skipped: activations are symmetric, so padding is 0.
Layouts: inputs CHW bytes; int8 outputs one row per (position, lane group), channel j of the
group in byte j; int32 outputs CHW words; weights one row per (lane group, tap) with output
channel o of the group in lane o; biases int32; per-layer constants in a small pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler.errors import CompileError
from compiler.layer_ir import Conv2d, Dense, Layer
from compiler.schedule import Timeline, TimedMove as M
from hw.asm import Program, assemble
from hw.config import AccelConfig
from hw.isa import Encoding


@dataclass(frozen=True)
class LayerBinding:
    """Where one compiled layer lives on the accelerator."""

    layer: Layer
    entry: int  # first instruction
    cycles: int  # exact cycle count of one run
    in_addr: int
    out_addr: int
    out_dtype: str  # "int8" or "int32"
    position_stride: int  # int8: bytes per output position (lane groups x row); int32: 0 (CHW)


@dataclass
class CompiledProgram:
    config: AccelConfig
    program: Program
    listing: str  # assembly, labelled per layer
    image: list[tuple[int, bytes]] = field(default_factory=list)  # data-memory segments
    layers: dict[str, LayerBinding] = field(default_factory=dict)


class _Memory:
    """Bump allocator over the data memory; every buffer must be reachable by immediates."""

    def __init__(self, config: AccelConfig, imm_max: int):
        self.config, self.row = config, config.vector_width // 8
        self.limit = min(config.dmem_bytes, imm_max + 1)
        self.top = 0
        self.image: list[tuple[int, bytes]] = []

    def alloc(self, size: int, align: int, what: str, data: bytes | None = None) -> int:
        addr = -(-self.top // align) * align
        if addr + size > self.limit:
            raise CompileError(
                f"{what}: {size} bytes do not fit the data memory of accelerator "
                f"'{self.config.name}' ({self.top} of {self.limit} addressable bytes used)")
        self.top = addr + size
        if data is not None:
            self.image.append((addr, data))
        return addr


def compile_layers(layers: list[Layer], config: AccelConfig) -> CompiledProgram:
    if config.buses < 3 or not all(config.has_unit(u) for u in ("alu", "lsu", "vmac")):
        raise CompileError(f"accelerator '{config.name}': the code generator needs at least 3 "
                           f"buses and the alu, lsu and vmac units")
    enc = Encoding(config)
    mem = _Memory(config, enc.imm_range[1])
    listing: list[str] = []
    bindings: dict[str, LayerBinding] = {}
    n_instr = 0
    for layer in layers:
        lines, binding = _compile_layer(layer, config, enc, mem, n_instr)
        listing.append(f"{layer.name}:  # {type(layer).__name__} {_describe(layer)}")
        listing.extend(f"    {line}" for line in lines)
        bindings[layer.name] = binding
        n_instr += len(lines)
    text = "\n".join(listing) + "\n"
    if n_instr > config.imem_depth:
        raise CompileError(f"the program needs {n_instr} instructions; accelerator "
                           f"'{config.name}' has {config.imem_depth}")
    program = assemble(text, enc, name="network")
    assert all(program.labels[n] == b.entry for n, b in bindings.items())
    return CompiledProgram(config, program, text, mem.image, bindings)


def _describe(layer: Layer) -> str:
    if isinstance(layer, Dense):
        return f"{layer.in_features} -> {layer.out_features}"
    return f"{layer.in_shape} -> {layer.out_shape} k={layer.weight.shape[2:]} s={layer.stride}"


def _compile_layer(layer: Layer, config: AccelConfig, enc: Encoding, mem: _Memory,
                   entry: int) -> tuple[list[str], LayerBinding]:
    conv = layer.as_conv() if isinstance(layer, Dense) else layer
    lanes, rq = config.lanes, conv.requant
    c_in, h, w = conv.in_shape
    o, oh, ow = conv.out_shape
    kh, kw = conv.weight.shape[2:]
    groups = -(-o // lanes)
    taps = [(c, ky, kx) for c in range(c_in) for ky in range(kh) for kx in range(kw)]
    lat = {u: config.latency(u) for u in ("alu", "lsu", "vmac")}
    name = layer.name

    # Memory: weight rows, biases, constants, input and output buffers.
    rows = np.zeros((groups, len(taps), lanes), np.int8)
    for g in range(groups):
        chans = conv.weight[g * lanes:(g + 1) * lanes]
        for t, (c, ky, kx) in enumerate(taps):
            rows[g, t, :len(chans)] = chans[:, c, ky, kx]
    row = config.vector_width // 8
    w_addr = mem.alloc(rows.size, row, f"layer {name}: weights", rows.tobytes())
    b_addr = mem.alloc(4 * o, 4, f"layer {name}: bias", conv.bias.astype("<i4").tobytes())
    in_addr = mem.alloc(c_in * h * w, row, f"layer {name}: input")
    # int8 outputs: one row per (position, lane group), written whole by the vector unit's rq;
    # int32 outputs: CHW words stored by the LSU.
    out_size = oh * ow * groups * row if rq else 4 * o * oh * ow
    out_addr = mem.alloc(out_size, row, f"layer {name}: output")

    tl = Timeline(config)
    lo, hi = enc.imm_range
    regs = iter(range(1, config.registers))

    def const(value: int) -> str:
        """An immediate if it fits, else a register loaded from the constant pool."""
        if lo <= value <= hi:
            return str(value)
        reg = f"r{next(regs)}"
        addr = mem.alloc(4, 4, f"layer {name}: constant", int(value).to_bytes(4, "little", signed=True))
        tl.place([M(0, str(addr), "lsu.ldw"), M(lat["lsu"], "lsu.res", reg)])
        return reg

    if rq:
        k_cfg = const((rq.lower & 0xFF) | (127 << 8))  # clip bounds
        k_mul, k_shift = const(rq.multiplier), const(rq.shift)
    tl.barrier()  # constants are in their registers from here on
    if rq:  # the vector unit's clip bounds and lane base, for the whole layer
        tl.place([M(0, k_cfg, "vmac.cfg"), M(0, "0", "vmac.base")])

    (sy, sx), (py, px), (dy, dx) = conv.stride, conv.padding, conv.dilation
    ll, lv, la = lat["lsu"], lat["vmac"], lat["alu"]
    for g in range(groups):
        used = min(lanes, o - g * lanes)
        if rq:  # per-lane parameters of this group's channels: bias, multiplier, shift
            for j in range(used):
                tl.place([M(0, str(b_addr + 4 * (g * lanes + j)), "lsu.ldw"),
                          M(ll, "lsu.res", "vmac.prm"), M(ll, str(j), "vmac.sbias")])
                tl.place([M(0, k_mul, "vmac.prm"), M(0, str(j), "vmac.smul")])
                tl.place([M(0, k_shift, "vmac.prm"), M(0, str(j), "vmac.sshift")])
        for y in range(oh):
            for x in range(ow):
                valid = [(t, (c * h + iy) * w + ix) for t, (c, ky, kx) in enumerate(taps)
                         for iy, ix in [(y * sy - py + ky * dy, x * sx - px + kx * dx)]
                         if 0 <= iy < h and 0 <= ix < w]
                if not valid:  # all taps in padding: clear the accumulators
                    tl.place([M(0, "0", "vmac.x"), M(0, str(w_addr // row), "vmac.mac0")])
                for i, (t, offset) in enumerate(valid):
                    wrow = (w_addr // row) + g * len(taps) + t
                    tl.place([M(0, str(in_addr + offset), "lsu.ldb"),
                              M(ll, "lsu.res", "vmac.x"),
                              M(ll, str(wrow), "vmac.mac0" if i == 0 else "vmac.mac")])
                if rq:  # bias, requantize, clip: the whole lane group into one row
                    out_row = out_addr // row + (y * ow + x) * groups + g
                    tl.place([M(0, str(out_row), "vmac.rq")])
                    continue
                for lane in range(used):  # int32: accumulator + bias through the ALU
                    ch = g * lanes + lane
                    dst = (ch * oh + y) * ow + x
                    tl.place([M(0, str(lane), "vmac.get"),
                              M(lv - ll, str(b_addr + 4 * ch), "lsu.ldw"),
                              M(lv, "vmac.res", "alu.in1"), M(lv, "lsu.res", "alu.add"),
                              M(lv + la, "alu.res", "lsu.data"),
                              M(lv + la, str(out_addr + 4 * dst), "lsu.stw")])
    lines = tl.lines(halt=True)
    return lines, LayerBinding(layer, entry, len(lines), in_addr, out_addr,
                               "int8" if rq else "int32", groups * row if rq else 0)
