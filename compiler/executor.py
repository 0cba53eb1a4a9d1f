"""Runs compiled layers: on an accelerator engine (RTL or golden model) or the numpy reference.

A backend is chosen by name; all take the same int8 input and return the integer output, so
the runtime and the tests can swap them and compare results bit for bit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from compiler.errors import CompileError
from compiler.kinds import reference
from compiler.layer_ir import input_grid
from compiler.program import CompiledProgram, LayerBinding
from hw.errors import SimulationError
from hw.machine import get_machine


@dataclass(frozen=True)
class LayerRun:
    name: str
    cycles: int
    counters: dict[str, int]


class Backend(ABC):
    """Runs a compiled program's layers on integer inputs: the numpy reference, the golden
    model or the RTL (`get_backend`); all three must agree bit for bit."""

    name = "base"
    compiled: CompiledProgram

    def run(self, layer_name: str, *inputs: np.ndarray) -> tuple[np.ndarray, LayerRun | None]:
        """Integer output of one layer for its integer input(s), and its run statistics (None
        where the backend has no cycles)."""
        b = self.compiled.layers.get(layer_name)
        if b is None:
            raise CompileError(f"no compiled layer {layer_name!r}; the program has "
                               f"{', '.join(self.compiled.layers)}")
        if len(inputs) != len(b.inputs):
            raise CompileError(f"layer {layer_name}: {len(inputs)} inputs, expected "
                               f"{len(b.inputs)}")
        for k, x in enumerate(inputs):
            grid = input_grid(b.layer, k)
            if np.asarray(x).size != int(np.prod(grid)):
                which = "input" if len(inputs) == 1 else f"input {k}"
                raise CompileError(f"layer {layer_name}: {which} of {np.asarray(x).size} "
                                   f"values, expected shape {grid}")
        return self._layer(b, *inputs)

    @abstractmethod
    def _layer(self, b: LayerBinding, *inputs: np.ndarray) -> tuple[np.ndarray, LayerRun | None]:
        """`run` on inputs already checked against the layer's binding."""


class ReferenceBackend(Backend):
    """The numpy integer reference: no cycles."""

    name = "reference"

    def __init__(self, compiled: CompiledProgram):
        self.compiled = compiled

    def _layer(self, b, *inputs):
        return reference(b.layer, *inputs), None


class MachineBackend(Backend):
    """A compiled program loaded once into an engine; each call runs one layer to its halt."""

    def __init__(self, compiled: CompiledProgram, engine: str):
        self.name = engine
        self.compiled = compiled
        self.machine = get_machine(engine, compiled.config)
        # Called with (binding, machine, row tile) after each run, before its output is read
        # (fault injection flips the words a layer wrote here).
        self.after_run: Callable[[LayerBinding, object, int], None] | None = None
        self.machine.load_program(compiled.program)
        for addr, data in compiled.image:
            self.machine.write_dmem(addr, data)
        for addr, data in compiled.offchip:  # constants the layers load themselves (DMA)
            self.machine.write_offchip(addr, data)
        self._segment_of = {n: seg for seg in compiled.segments for n in seg.layers}
        self._pending: dict[str, tuple] = {}  # outputs of a segment's later layers

    def _layer(self, b, *inputs):
        name = b.layer.name
        if name in self._pending:  # computed in its segment's run
            return self._pending.pop(name)
        seg = self._segment_of.get(name)
        if seg is not None and seg.layers[0] != name:
            if name not in seg.resumable:
                raise CompileError(f"layer {name} runs within the run that starts with layer "
                                   f"{seg.layers[0]}: run that one first")
            return self._segment(seg.layers[seg.layers.index(name):], b, inputs)
        if seg is not None and len(seg.layers) > 1:
            return self._segment(seg.layers, b, inputs)
        out_shape = b.layer.out_shape
        rows, cycles, counters = [], 0, {}
        if b.row_tiling is not None and b.row_tiling.in_code:  # one run loops over the tiles
            self._write_inputs(b, inputs, 0)
            _, run = self._run(b, b.cycles)
            row = self.compiled.config.vector_width // 8
            step = -(-b.output.size // row) * row
            rows = [b.output.decode(self.machine.read_offchip(b.offchip_output + t * step,
                                                              b.output.size))
                    for t in range(b.tiles)]
            cycles, counters = run.cycles, run.counters
        for t in range(b.host_runs if not rows else 0):
            self._write_inputs(b, inputs, t)
            out, run = self._run(b, b.row_tiling.cycles_per_tile if b.row_tiling else b.cycles,
                                 t)
            rows.append(out)
            cycles += run.cycles
            for k, v in run.counters.items():
                counters[k] = counters.get(k, 0) + v
        if b.row_tiling is None:
            out = rows[0]
        else:
            oh = out_shape[1] if len(out_shape) == 3 else 1
            out = np.concatenate(rows, axis=1)[:, :oh]
        return self._shaped(b, out), LayerRun(name, cycles, counters)

    @staticmethod
    def _shaped(b: LayerBinding, out: np.ndarray) -> np.ndarray:
        return out.reshape(b.layer.out_shape).astype(np.int32 if b.output.bits == 32 else np.int8)

    def _write_inputs(self, b: LayerBinding, inputs, t: int) -> None:
        """The layer's inputs as its code reads them: whole, or row tile t's window of the
        padded input (or its patches); into the off-chip memory when its code loads them."""
        if b.row_tiling is None:
            data = [layout.encode(np.asarray(x).reshape(layout.shape))
                    for layout, x in zip(b.inputs, inputs)]
        else:
            rt, layout = b.row_tiling, b.inputs[0]
            grid = b.input_grid(inputs[0])  # the input, or its patches
            c, h, w = grid.shape
            pt, pl, pb, pr = rt.padding
            xp = np.full((c, max(h + pt + pb, (rt.tiles - 1) * rt.step + rt.in_rows),
                          layout.cols), rt.fill, np.int64)
            xp[:, pt:pt + h, pl:pl + w] = grid
            if rt.in_code:  # the whole padded grid: the layer's code loads each window
                whole = replace(layout, shape=xp.shape, rows=xp.shape[1])
                data = [whole.encode(xp)]
            else:
                data = [layout.encode(xp[:, t * rt.step:t * rt.step + rt.in_rows])]
        if b.offchip_inputs:
            for ext, raw in zip(b.offchip_inputs, data):
                self.machine.write_offchip(ext, raw)
        else:
            for layout, raw in zip(b.inputs, data):
                self.machine.write_dmem(layout.addr, raw)

    def _output(self, b: LayerBinding) -> np.ndarray:
        """The layer's output buffer decoded: from the off-chip memory when its code stores it
        there, else (an intermediate result, read at its run's pause) from the data memory."""
        m, out = self.machine, b.output
        raw = m.read_offchip(b.offchip_output, out.held_bytes) if b.offchip_output is not None \
            else m.read_dmem(out.addr, out.size)
        return out.decode(raw)

    def _segment(self, seg: tuple[str, ...], b: LayerBinding, inputs):
        """One run from the first layer's input to the last layer's halt, paused (not written
        to) at every layer boundary to read that layer's counters and output."""
        if self.after_run is not None:
            raise CompileError("fault injection flips a layer's output between runs; compile "
                               "the layers without the network's dataflow (one run each)")
        m = self.machine
        self._write_inputs(b, inputs, 0)
        m.reset()
        m.set_pc(b.entry)
        before = dict.fromkeys(m.counter_names, 0)
        results = {}
        for k, name in enumerate(seg):
            lb = self.compiled.layers[name]
            if k + 1 < len(seg):
                state = m.advance(lb.cycles)
                nxt = self.compiled.layers[seg[k + 1]]
                if state.pc != nxt.entry:
                    raise SimulationError(
                        f"after layer {name}'s {lb.cycles} cycles the accelerator is at "
                        f"instruction {state.pc}, not at layer {nxt.layer.name}'s first "
                        f"({nxt.entry}): the compile-time cycle count is wrong")
            else:
                m.run(max_cycles=lb.cycles + 16)
                state = m.state()
            counters = {c: state.counters[c] - before[c] for c in state.counters}
            before = state.counters
            results[name] = (self._shaped(lb, self._output(lb)),
                             LayerRun(name, counters["cycles"], counters))
        first = results.pop(seg[0])
        self._pending = results
        return first

    def _run(self, b, cycles: int, tile: int = 0):
        """One run from the layer's entry to its halt; the output buffer decoded."""
        m = self.machine
        m.reset()
        m.set_pc(b.entry)
        result = m.run(max_cycles=cycles + 16)
        if self.after_run is not None:
            self.after_run(b, m, tile)
        return self._output(b), result


BACKENDS = ("rtl", "golden", "reference", "rtl-fault")  # rtl-fault: fault-injection build


def get_backend(name: str, compiled: CompiledProgram) -> Backend:
    """The backend `name` (`BACKENDS`: reference, golden, rtl, rtl-fault) for `compiled`."""
    if name == "reference":
        return ReferenceBackend(compiled)
    if name in ("rtl", "golden", "rtl-fault"):
        return MachineBackend(compiled, name)
    raise CompileError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
