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
from compiler.layer_ir import in_shape, out_shape
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
    def run(self, layer_name: str, x: np.ndarray) -> tuple[np.ndarray, LayerRun | None]:
        """Integer output of one layer for an int8 input, and its run statistics if any."""


class ReferenceBackend(Backend):
    """The numpy integer reference: no cycles."""

    name = "reference"

    def __init__(self, compiled: CompiledProgram):
        self.compiled = compiled

    def run(self, layer_name, x):
        return run_layer(self.compiled.layers[layer_name].layer, x), None


class MachineBackend(Backend):
    """A compiled program loaded once into an engine; each call runs one layer to its halt."""

    def __init__(self, compiled: CompiledProgram, engine: str):
        self.name = engine
        self.compiled = compiled
        self.machine = get_machine(engine, compiled.config)
        self.machine.load_program(compiled.program)
        for addr, data in compiled.image:
            self.machine.write_dmem(addr, data)

    def run(self, layer_name, x):
        b = self.compiled.layers[layer_name]
        x = np.asarray(x, np.int8)
        if x.size != int(np.prod(in_shape(b.layer))):
            raise CompileError(f"layer {layer_name}: input of {x.size} values, expected shape "
                               f"{in_shape(b.layer)}")
        m = self.machine
        m.write_dmem(b.in_addr, x.ravel().view(np.uint8))
        m.reset()
        m.set_pc(b.entry)
        result = m.run(max_cycles=b.cycles + 16)
        shape = out_shape(b.layer)
        if b.out_dtype == "int32":
            out = m.read_dmem(b.out_addr, 4 * int(np.prod(shape))).view(np.int32).reshape(shape)
        else:  # one row per position: channels first within it
            channels, positions = shape[0], int(np.prod(shape[1:]))
            raw = m.read_dmem(b.out_addr, positions * b.position_stride).view(np.int8)
            out = raw.reshape(positions, b.position_stride)[:, :channels].T.reshape(shape)
        return out.copy(), LayerRun(layer_name, result.cycles, result.counters)


BACKENDS = ("rtl", "golden", "reference")


def get_backend(name: str, compiled: CompiledProgram) -> Backend:
    if name == "reference":
        return ReferenceBackend(compiled)
    if name in ("rtl", "golden"):
        return MachineBackend(compiled, name)
    raise CompileError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
