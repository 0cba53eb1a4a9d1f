"""Runs compiled layers: on an accelerator engine (RTL or golden model) or the numpy reference.

A backend is chosen by name; all take the same int8 input and return the integer output, so
the runtime and the tests can swap them and compare results bit for bit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from compiler.codegen import CompiledProgram
from compiler.errors import CompileError
from compiler.layer_ir import out_shape
from compiler.reference import run_layer
from hw.machine import get_machine


@dataclass(frozen=True)
class LayerRun:
    name: str
    cycles: int
    counters: dict[str, int]


class Backend(ABC):
    name = "base"

    @abstractmethod
    def run(self, layer_name: str, *inputs: np.ndarray) -> tuple[np.ndarray, LayerRun | None]:
        """Integer output of one layer for its integer input(s), and its run statistics."""


class ReferenceBackend(Backend):
    """The numpy integer reference: no cycles."""

    name = "reference"

    def __init__(self, compiled: CompiledProgram):
        self.compiled = compiled

    def run(self, layer_name, *inputs):
        return run_layer(self.compiled.layers[layer_name].layer, *inputs), None


class MachineBackend(Backend):
    """A compiled program loaded once into an engine; each call runs one layer to its halt."""

    def __init__(self, compiled: CompiledProgram, engine: str):
        self.name = engine
        self.compiled = compiled
        self.machine = get_machine(engine, compiled.config)
        self.machine.load_program(compiled.program)
        for addr, data in compiled.image:
            self.machine.write_dmem(addr, data)

    def run(self, layer_name, *inputs):
        b = self.compiled.layers[layer_name]
        if len(inputs) != len(b.inputs):
            raise CompileError(f"layer {layer_name}: {len(inputs)} inputs, expected "
                               f"{len(b.inputs)}")
        m = self.machine
        for layout, x in zip(b.inputs, inputs):
            x = np.asarray(x)
            if x.size != int(np.prod(layout.shape)):
                raise CompileError(f"layer {layer_name}: input of {x.size} values, expected "
                                   f"shape {layout.shape}")
            m.write_dmem(layout.addr, layout.encode(x.reshape(layout.shape)))
        m.reset()
        m.set_pc(b.entry)
        result = m.run(max_cycles=b.cycles + 16)
        out = b.output.decode(m.read_dmem(b.output.addr, b.output.size))
        dtype = np.int32 if b.output.bits == 32 else np.int8
        return out.reshape(out_shape(b.layer)).astype(dtype), \
            LayerRun(layer_name, result.cycles, result.counters)


BACKENDS = ("rtl", "golden", "reference")


def get_backend(name: str, compiled: CompiledProgram) -> Backend:
    if name == "reference":
        return ReferenceBackend(compiled)
    if name in ("rtl", "golden"):
        return MachineBackend(compiled, name)
    raise CompileError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
