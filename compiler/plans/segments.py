"""Weight segments: how a windowed layer's weight rows are placed, and split when they do not fit.

Resident (or loaded once when the layer starts), a lane pass's weights are one segment. A
streamed layer whose weights do not fit beside its activations is cut into segments that fit a
buffer: a layer computed in one window (a dense layer at batch 1) by input words (each segment
adds to the same accumulators: the first starts the sums, the last writes the outputs), any
other by whole output groups of chunks. Segment j + 1 is loaded by the DMA unit into the other
of two buffers while segment j computes (in a bank of its own, apart from the outputs the core
writes); the wait before it stalls by a number of cycles known from the DMA's timing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.errors import MemoryFitError


@dataclass(frozen=True)
class Segment:
    lane_pass: int
    chunks: range
    entries: slice  # of each chunk's entry list
    start: bool  # its first entry of each chunk starts the sums
    write: bool  # it ends with the outputs of its chunks
    rows: tuple[int, ...]  # the layer's weight rows (indices) it uses, in load order
    first_row: int  # where the first of them sits in the data memory
    ext: int | None = None  # off-chip address when the layer's code loads it (DMA)
    _where: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        self._where.update({r: self.first_row + k for k, r in enumerate(self.rows)})

    def row(self, index: int) -> int:
        """Data-memory row of the layer's weight row `index`."""
        return self._where[index]


class Offchip:
    """The off-chip image of streamed constants (addresses are a program's)."""

    def __init__(self, start: int = 0):
        self.top, self.image = start, []

    def add(self, data: bytes) -> int:
        addr = self.top
        self.image.append((addr, data))
        self.top += len(data)
        return addr


def plan_segments(plan, entries: list[list], chunks_of_pass: list[range], one_window: bool,
                  act_min: int, act_full: int | None = None) -> list[list[Segment]]:
    """Segments per lane pass. `entries[q]`: (key, weight row index) of chunk q; `act_min`:
    bytes the layer's activations need at least (one row tile), `act_full`: all of them. The
    segments leave room for all of them when one chunk's buffer fits beside them (two when
    they fit): loads waited for cost less than row tiles, which load every segment again per
    tile."""
    mem, rows = plan.mem, plan.weight_rows
    row_bytes = mem.row
    avail = mem.limit - mem.top - act_min
    everything = [r for q in range(len(entries)) for _, r in entries[q]]
    if mem.offchip is None or len(rows) * row_bytes <= avail:
        first = mem.rows(b"".join(rows[r].tobytes() for r in everything),
                         f"layer {plan.layer.name}: weights") if everything else 0
        return [[Segment(p, cs, slice(None), True, True,
                         tuple(r for q in cs for _, r in entries[q]),
                         first + sum(len(entries[q]) for q in range(cs.start)))]
                for p, cs in enumerate(chunks_of_pass)]
    # Two buffers, the activations from a bank boundary after them (the DMA fills one while
    # the core computes); or, when that leaves no room for a chunk, one buffer filled and
    # waited for in turn.
    config, largest = plan.config, max(len(e) for e in entries)
    two = mem.overlap and config.dmem_banks > 1
    full = avail + act_min - (act_full or act_min)  # room with all the activations
    if act_full is not None and act_full > act_min and full // row_bytes >= largest:
        # one buffer waited for beats row tiles, which would load every segment once per tile
        two = two and (full - config.bank_bytes) // 2 // row_bytes >= largest
        avail = full
    budget = max(0, (avail - config.bank_bytes) // 2 // row_bytes)
    overlap = two and budget >= largest
    if not overlap:
        budget = max(0, avail // row_bytes)
    out = []
    for p, cs in enumerate(chunks_of_pass):
        pieces = []  # (chunks, entries slice)
        if one_window:  # by input words: pieces of the entry lists
            longest, e0 = max(len(entries[q]) for q in cs), 0
            while e0 < longest:
                e1 = e0
                while e1 < longest and sum(len(entries[q][e0:e1 + 1]) for q in cs) <= budget:
                    e1 += 1
                if e1 == e0:
                    raise MemoryFitError(
                        f"layer {plan.layer.name}: one input word of its weights "
                        f"({len(cs)} rows) does not fit the data memory of accelerator "
                        f"'{plan.config.name}' beside its activations")
                pieces.append((cs, slice(e0, e1)))
                e0 = e1
        else:  # by chunks of output lanes
            q0 = cs.start
            while q0 < cs.stop:
                q1 = q0
                while q1 < cs.stop and sum(len(entries[q]) for q in range(q0, q1 + 1)) <= budget \
                        and (q1 == q0 or out or pieces):  # the layer's first segment: one chunk
                    q1 += 1
                if q1 == q0:
                    raise MemoryFitError(
                        f"layer {plan.layer.name}: the weights of one chunk of output lanes "
                        f"({len(entries[q0])} rows) do not fit the data memory of accelerator "
                        f"'{plan.config.name}' beside its activations")
                pieces.append((range(q0, q1), slice(None)))
                q0 = q1
        for chunks, sl in pieces:
            used = tuple(r for q in chunks for _, r in entries[q][sl])
            longest = max(len(entries[q]) for q in chunks)
            ext = mem.offchip.add(b"".join(rows[r].tobytes() for r in used))
            out.append((p, chunks, sl, sl.start in (None, 0),
                        sl.stop is None or sl.stop >= longest, used, ext))
    plan.preload_top = mem.top  # the layer's start loads its parameters; segments come apart
    buffers = [mem.alloc(budget * row_bytes, row_bytes, f"layer {plan.layer.name}: weight buffer")
               // row_bytes for _ in range(2 if overlap else 1)]
    plan.dma_segments, plan.overlap = True, overlap
    segs = [[] for _ in chunks_of_pass]
    for j, (p, chunks, sl, start, write, used, ext) in enumerate(out):
        segs[p].append(Segment(p, chunks, sl, start, write, used, buffers[j % len(buffers)], ext))
    return segs

