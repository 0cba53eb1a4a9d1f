"""The compiler's output: one program with an entry per layer, a data-memory image, and where each
layer's inputs and output live (the seam between code generation and the backends)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler.layer_ir import Layer
from compiler.layout import Im2col, Layout, RowTiling
from hw.asm import Program
from hw.config import AccelConfig


@dataclass(frozen=True)
class ExecBlock:
    """Straight-line instructions of a layer and how often one run executes them: the static
    schedule the estimator counts events from."""

    start: int  # first instruction, relative to the layer's entry
    length: int
    count: int  # executions of each of its instructions per run (per row tile)
    exits: int = 0  # executions of its last instruction whose guarded jump falls through
    stall: int = 0  # cycles its instructions wait per execution (a DMA wait; known statically)
    events: tuple[tuple[str, int], ...] = ()  # counter increments per execution besides its
    #                                           instructions' (a DMA transfer's traffic, stalls)


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
    blocks: tuple[ExecBlock, ...] = ()  # the layer's code with its execution counts
    im2col: Im2col | None = None  # the input is written as patches (a stem reading the input)
    offchip_inputs: tuple[int, ...] = ()  # where the host writes its inputs (its code loads
    #                                       them by DMA); empty: into the data memory
    offchip_output: int | None = None  # where its code stores its output for the host

    @property
    def tiles(self) -> int:
        return self.row_tiling.tiles if self.row_tiling else 1

    @property
    def host_runs(self) -> int:
        """Runs of its code per inference: one per row tile unless its code loops over them."""
        return 1 if self.row_tiling is None or self.row_tiling.in_code else self.tiles

    def input_grid(self, x: np.ndarray) -> np.ndarray:
        """The integer input as the tiles read it: the layer's input, or its patches."""
        x = np.asarray(x).reshape(self.layer.in_grid)
        return self.im2col.apply(x) if self.im2col else x


@dataclass(frozen=True)
class Segment:
    """Layers run in one go, in order: the first's inputs come from the host, each later one's
    from layers before it in the run (their code copies them over)."""

    layers: tuple[str, ...]
    why: str  # why the run starts at its first layer
    # later layers a run may also start from (the host writing that layer's inputs): none
    # after it reads a buffer written before it (an ensemble's members skip a shared prefix)
    resumable: tuple[str, ...] = ()


@dataclass
class CompiledProgram:
    config: AccelConfig
    program: Program
    listing: str  # assembly, labelled per layer
    image: list[tuple[int, bytes]] = field(default_factory=list)  # data-memory segments
    layers: dict[str, LayerBinding] = field(default_factory=dict)
    offchip: list[tuple[int, bytes]] = field(default_factory=list)  # off-chip memory segments
    # runs of layers (one per layer when compiled without the network's dataflow)
    segments: list[Segment] = field(default_factory=list)
