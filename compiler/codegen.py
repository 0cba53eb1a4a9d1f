"""TTA code generation: layer IR -> one program with an entry per layer + a data-memory image.

Every layer is a loop nest that ends in a halt; its cycle count is known exactly at compile time
(`LayerBinding.cycles`, checked against the RTL by the tests). Each layer's plan comes from its
kind (`compiler.kinds`): the dot form for convolutions and dense layers, the element-wise form
for depthwise ones, row operations for pooling, adds and affine layers (`compiler.plans`).

Memory: constants (weights, parameter rows) sit at the bottom, activations right above them. No
instruction stalls on a bank conflict wherever they lie: the scheduler never puts an LSU access
and a vector-unit memory access of the same kind in one cycle (and the loop bodies use no LSU).
Constants of all layers stay resident when they fit; otherwise each layer's constants live in
the off-chip memory (`CompiledProgram.offchip`) and its code starts by loading them with the DMA
unit (a transfer and a wait whose stall the compiler knows).
Activations that do not fit run in tiles of output rows (`RowTiling`), the executor writing each
tile's window.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from compiler.errors import CompileError, MemoryFitError
from compiler.kinds import get_kind
from compiler.layer_ir import Layer
from compiler.plans.base import Memory, Plan, align_up
from compiler.plans.segments import Offchip
from compiler.program import CompiledProgram, LayerBinding
from hw.asm import assemble
from hw.config import AccelConfig
from hw.isa import Encoding


def compile_layers(layers: list[Layer], config: AccelConfig, stream_weights: bool | None = None,
                   host_inputs: frozenset[str] = frozenset(),
                   overlap: bool = True, share_rows: bool = True) -> CompiledProgram:
    """Constants stay resident when all layers' fit beside the activations. Otherwise the
    one layer with the fewest constants that makes the rest fit is streamed, or failing that
    the layers with the largest, as few as needed (all of them with stream_weights=True):
    their constants live in the off-chip memory and each loads its own
    into a buffer above the resident ones (DMA) when it runs. `host_inputs`: layers whose input
    is the network's (the host writes it, in any layout: stems take patches); overlap=False
    loads weight segments one after the other (for comparison); share_rows=False gives every
    parameter row its own words (fault injection: one flip, one value)."""
    if config.buses < 3 or not all(config.has_unit(u) for u in ("alu", "lsu", "vmac")):
        raise CompileError(f"accelerator '{config.name}': the code generator needs at least 3 "
                           f"buses and the alu, lsu and vmac units")
    if config.vector_width < 64:
        raise CompileError(f"accelerator '{config.name}': the code generator needs W >= 64")
    enc = Encoding(config)

    def plan(i: int, layer: Layer, mem: Memory) -> Plan:
        return get_kind(layer.kind).plan(i, layer, config, mem, layer.name in host_inputs)

    # constants of each layer alone, largest first: the order in which layers are streamed
    sizes = [Memory(config, share=share_rows) for _ in layers]
    for i, layer in enumerate(layers):
        sizes[i].limit = 1 << 62  # measure, whatever the data memory
        plan(i, layer, sizes[i])
    by_size = sorted(range(len(layers)), key=lambda i: -sizes[i].top)
    attempts = [set(by_size)] if stream_weights else \
        [set()] + _cheap_sets([i for i in reversed(by_size) if sizes[i].top],
                              [sizes[i].top for i in range(len(layers))]) + \
        [set(by_size[:n]) for n in range(1, len(layers) + 1)]
    error = None
    for streamed in attempts:
        if streamed and not config.has_unit("dma"):
            raise error or MemoryFitError(f"accelerator '{config.name}' has no dma unit to "
                                          f"load streamed constants")
        try:
            plans, emitted, image, offchip = _place(layers, streamed, plan, config, enc,
                                                    overlap, share_rows)
            break
        except MemoryFitError as exc:
            error = error or exc  # the resident attempt's reason is the clearest
            if streamed is attempts[-1]:
                raise exc from None
    listing: list[str] = []
    bindings: dict[str, LayerBinding] = {}
    for p, (lines, binding) in zip(plans, emitted):
        layer = p.layer
        listing.append(f"# {layer.name}: {type(layer).__name__} "
                       f"{get_kind(layer.kind).describe(layer)}")
        listing.extend(lines)
        bindings[layer.name] = binding
    text = "\n".join(listing) + "\n"
    n_instr = sum(1 for line in listing if not line.endswith(":") and not line.startswith("#"))
    if n_instr > config.imem_depth:
        raise CompileError(f"the program needs {n_instr} instructions; accelerator "
                           f"'{config.name}' has {config.imem_depth}")
    reach = enc.imm_range[1] + 1  # jumps take their target as a short immediate
    if n_instr > reach:
        raise CompileError(f"the program needs {n_instr} instructions; the loops of accelerator "
                           f"'{config.name}' reach only the first {reach} (jump targets are "
                           f"{config.short_imm_bits}-bit immediates)")
    program = assemble(text, enc, name="network")
    for p in plans:
        b = bindings[p.layer.name]
        bindings[p.layer.name] = replace(b, entry=program.labels[p.label])
    return CompiledProgram(config, program, text, image, bindings, offchip)


def _cheap_sets(ascending: list[int], size: list[int], most: int = 48) -> list[set[int]]:
    """Sets of layers to stream, fewest bytes first: runs of layers of neighbouring sizes
    (a network just past the memory streams a few small layers rather than its largest)."""
    runs = {frozenset(ascending[a:b]) for a in range(len(ascending))
            for b in range(a + 1, len(ascending) + 1)}
    return [set(r) for r in sorted(runs, key=lambda r: (sum(size[i] for i in r), len(r)))][:most]


def _place(layers, streamed: set[int], plan, config: AccelConfig, enc: Encoding,
           overlap: bool = True, share: bool = True):
    """Plans with the resident constants from row 0 and each streamed layer's in a buffer
    above them (loaded by its own code from the off-chip memory), activations above both (from
    a bank boundary when a layer loads weights while it computes, so the DMA's writes never
    meet the core's)."""
    resident = Memory(config, share=share)
    mems = {i: resident for i in range(len(layers)) if i not in streamed}
    plans = [plan(i, layer, mems[i]) if i in mems else None for i, layer in enumerate(layers)]
    base = align_up(resident.top, resident.row)
    area = Offchip()
    for i in sorted(streamed):
        mem = mems[i] = Memory(config, base, area, overlap, share)
        plans[i] = p = plan(i, layers[i], mem)
        end = p.preload_top if p.preload_top is not None else mem.top
        rows = -(-(end - base) // mem.row)
        if rows:
            data = np.zeros(rows * mem.row, np.uint8)
            for addr, chunk in mem.image:
                if addr < end:
                    data[addr - base:addr - base + len(chunk)] = np.frombuffer(chunk, np.uint8)
            p.preload = (area.add(data.tobytes()), rows, base // mem.row)
    if area.top > config.offchip.bytes:
        raise CompileError(f"the streamed constants ({area.top} bytes) do not fit the off-chip "
                           f"memory of accelerator '{config.name}' ({config.offchip.bytes} "
                           f"bytes)")
    # Each layer's activations start above its own constants (the resident ones and its
    # buffer): streamed layers reload theirs, so a later layer may overwrite them.
    scratch = [align_up(max(resident.top, mems[i].top),
                        config.bank_bytes if p.overlap else resident.row)
               for i, p in enumerate(plans)]
    return plans, [p.emit(s, enc) for p, s in zip(plans, scratch)], resident.image, area.image
