"""TTA code generation: layer IR -> one program with an entry per layer + a data-memory image.

Every layer is a loop nest that ends in a halt; its cycle count is known exactly at compile time
(`LayerBinding.cycles`, checked against the RTL by the tests). Each layer's plan comes from its
kind (`compiler.kinds`): the dot form for convolutions and dense layers, the element-wise form
for depthwise ones, row operations for pooling, adds and affine layers (`compiler.plans`).

Memory: constants (weights, parameter rows) sit at the bottom, activations right above them. No
instruction stalls on a bank conflict wherever they lie: the scheduler never puts an LSU access
and a vector-unit memory access of the same kind in one cycle (and the loop bodies use no LSU).
Constants of all layers stay resident when they fit; otherwise each layer's are streamed
(written by the executor before it runs).
Activations that do not fit run in tiles of output rows (`RowTiling`), the executor writing each
tile's window.
"""

from __future__ import annotations

from dataclasses import replace

from compiler.errors import CompileError, MemoryFitError
from compiler.kinds import get_kind
from compiler.layer_ir import Layer
from compiler.plans.base import Memory, Plan, align_up
from compiler.program import CompiledProgram, LayerBinding
from hw.asm import assemble
from hw.config import AccelConfig
from hw.isa import Encoding


def compile_layers(layers: list[Layer], config: AccelConfig, stream_weights: bool | None = None,
                   host_inputs: frozenset[str] = frozenset()) -> CompiledProgram:
    """Weights stay resident when all layers' constants fit beside the largest activations;
    otherwise (or with stream_weights=True) each layer's constants start at address 0 and the
    executor writes them before the layer runs. `host_inputs`: layers whose input is the
    network's (the host writes it, in any layout: stems take patches)."""
    if config.buses < 3 or not all(config.has_unit(u) for u in ("alu", "lsu", "vmac")):
        raise CompileError(f"accelerator '{config.name}': the code generator needs at least 3 "
                           f"buses and the alu, lsu and vmac units")
    if config.vector_width < 64:
        raise CompileError(f"accelerator '{config.name}': the code generator needs W >= 64")
    if stream_weights is None:
        try:
            return compile_layers(layers, config, False, host_inputs)
        except MemoryFitError:
            if len(layers) == 1:
                raise
            return compile_layers(layers, config, True, host_inputs)
    enc = Encoding(config)

    def plan(i: int, layer: Layer, mem: Memory) -> Plan:
        return get_kind(layer.kind).plan(i, layer, config, mem, layer.name in host_inputs)

    if stream_weights:
        emitted, plans = [], []
        for i, layer in enumerate(layers):
            mem = Memory(config)
            p = plan(i, layer, mem)
            lines, binding = _emit_all([p], mem, enc)[0]
            emitted.append((lines, replace(binding, image=tuple(mem.image))))
            plans.append(p)
        image = []
    else:
        mem = Memory(config)
        plans = [plan(i, layer, mem) for i, layer in enumerate(layers)]
        emitted = _emit_all(plans, mem, enc)
        image = mem.image
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
    program = assemble(text, enc, name="network")
    for p in plans:
        b = bindings[p.layer.name]
        bindings[p.layer.name] = replace(b, entry=program.labels[p.label])
    return CompiledProgram(config, program, text, image, bindings)


def _emit_all(plans: list[Plan], mem: Memory, enc: Encoding):
    while True:  # emitting may add constants, which can move the activations' area up
        scratch = align_up(mem.top, mem.row)
        emitted = [p.emit(scratch, enc) for p in plans]
        if mem.top <= scratch:
            return emitted
