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

from dataclasses import dataclass, replace

import numpy as np

from compiler.errors import CompileError, MemoryFitError
from compiler.kinds import get_kind
from compiler.kinds.base import Hints
from compiler.intsem import QMIN
from compiler.layer_ir import Conv2d, Layer, Pool, input_grid
from compiler.layout import Layout
from compiler.plans.base import Memory, Plan, TileIO, align_up, mac_bits
from compiler.plans.handover import plan_copy
from compiler.plans.lanes import LaneCopy, plan_lanes
from compiler.plans.segments import Offchip
from compiler.program import CompiledProgram, LayerBinding, Segment
from hw.asm import assemble
from hw.config import AccelConfig
from hw.isa import Encoding


def compile_layers(layers: list[Layer], config: AccelConfig, stream_weights: bool | None = None,
                   host_inputs: frozenset[str] = frozenset(),
                   overlap: bool = True, share_rows: bool = True,
                   sources: dict[str, tuple] | None = None,
                   host_reads: frozenset[str] = frozenset(),
                   compact: bool = False, cuts: frozenset[str] = frozenset()) -> CompiledProgram:
    """Constants stay resident when all layers' fit beside the activations. Otherwise the
    one layer with the fewest constants that makes the rest fit is streamed, or failing that
    the layers with the largest, as few as needed (all of them with stream_weights=True):
    their constants live in the off-chip memory and each loads its own
    into a buffer above the resident ones (DMA) when it runs. `host_inputs`: layers whose input
    is the network's (the host writes it, in any layout: stems take patches); overlap=False
    loads weight segments one after the other (for comparison); share_rows=False gives every
    parameter row its own words (fault injection: one flip, one value).

    `sources` (per layer, where each input comes from: `compiler.graph.Source`) chains layers
    into whole-network segments: a layer whose inputs all come from layers of the running
    segment follows them in one run, its producers copying their outputs into its input
    (`compiler.plans.handover`); without it every layer is a run of its own. With a DMA unit,
    a run's first layer loads its inputs from the off-chip memory (the host writes them there)
    and the layers whose outputs leave the run (to another run, or `host_reads`: read by a host
    op) store them there."""
    if config.buses < 3 or not all(config.has_unit(u) for u in ("alu", "lsu", "vmac")):
        raise CompileError(f"accelerator '{config.name}': the code generator needs at least 3 "
                           f"buses and the alu, lsu and vmac units")
    if config.vector_width < 64:
        raise CompileError(f"accelerator '{config.name}': the code generator needs W >= 64")
    enc = Encoding(config)

    by_name = {la.name: la for la in layers}
    readers: dict[str, list[str]] = {}  # a producer's consumers, when they take its values
    for name, srcs in (sources or {}).items():  # as they are (the host converts none)
        for k, s in enumerate(srcs):
            if s.kind == "layer" and s.name in by_name and name in by_name:
                if _same_values(by_name[s.name], by_name[name], k):
                    readers.setdefault(s.name, []).append(name)
    kinds = {la.name: get_kind(la.kind) for la in layers}
    row_out = {n for n, rs in readers.items()
               if all(kinds[r].reads_row_positions(by_name[r], config) for r in rs)}
    word_out = {n for n, rs in readers.items() if all(kinds[r].reads_word_positions for r in rs)}
    made: dict[str, Plan] = {}  # the latest plan of each layer

    def plan(i: int, layer: Layer, mem: Memory) -> Plan:
        src = (sources or {}).get(layer.name, ())
        grid = _dense_grid(layer, made.get(src[0].name), config) \
            if len(src) == 1 and src[0].kind == "layer" else None
        made[layer.name] = p = kinds[layer.name].plan(
            i, layer, config, mem, layer.name in host_inputs,
            Hints(row_positions=layer.name in row_out, word_positions=layer.name in word_out,
                  input_grid=grid))
        p.compact = compact
        return p

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
            plans, scratch, base, image, area = _place(
                layers, streamed, plan, config, overlap, share_rows,
                zero=share_rows and (bool(sources) or any(get_kind(la.kind).moves_rows
                                                          for la in layers)))
            emitted, segments = _emit(plans, scratch, base, enc, sources, area, host_reads,
                                      cuts)
            offchip = area.image
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
    limit = min(config.imem_depth, enc.imm_range[1] + 1)
    if not compact and n_instr > limit:
        return compile_layers(layers, config, stream_weights, host_inputs, overlap, share_rows,
                              sources, host_reads, compact=True, cuts=cuts)
    if sources and n_instr > limit:
        # Runs end before the consumers whose hand-over code is largest, as few as make the
        # program fit (each cut stores and loads a tensor by DMA instead); failing that,
        # layer by layer.
        code = sorted(((n, name) for p in plans for name, n in p.handover_code.items()
                       if name not in cuts), reverse=True)
        more, saved = set(), 0
        for n, name in code:
            if saved >= n_instr - limit + 16 * (len(more) + 1):
                break
            more.add(name)
            saved += n
        if more and len(cuts) < len(layers) // 2:
            try:
                return compile_layers(layers, config, stream_weights, host_inputs, overlap,
                                      share_rows, sources, host_reads, True, cuts | more)
            except CompileError:
                pass
        # the hand-over code does not fit the instruction memory: layer by layer instead
        alone = compile_layers(layers, config, stream_weights, host_inputs, overlap, share_rows,
                               compact=True)
        why = f"whole-network code needs {n_instr} instructions (of {config.imem_depth})"
        alone.segments = [replace(s, why=why) for s in alone.segments]
        return alone
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
    compiled = CompiledProgram(config, program, text, image, bindings, offchip, segments)
    if sources and not streamed and stream_weights is None and config.has_unit("dma") and \
            any(b.tiles > 1 for b in bindings.values()):
        # Every constant resident leaves layers in row tiles, each window loaded and each
        # tile stored through the off-chip memory: streaming the constants instead may let the
        # activations fit. The faster of the two, unless it takes more energy.
        try:
            alt = compile_layers(layers, config, True, host_inputs, overlap, share_rows,
                                 sources, host_reads, compact)
        except CompileError:
            return compiled
        return alt if _faster(alt, compiled) else compiled
    return compiled


def _faster(a: CompiledProgram, b: CompiledProgram) -> bool:
    """a takes fewer cycles than b and no more energy (the estimator's counts, exact)."""
    from compiler.estimate import estimate
    from hw.energy import energy_of

    def totals(p: CompiledProgram) -> tuple[int, float]:
        runs = list(estimate(p).values())
        cycles = sum(c["cycles"] for c in runs)
        energy = sum(energy_of(c, p.config.energy, p.config.vector_width).total_pj for c in runs)
        return cycles, energy
    (ca, ea), (cb, eb) = totals(a), totals(b)
    return ca < cb and ea <= eb


def _dense_grid(layer: Layer, producer: Plan | None, config: AccelConfig):
    """How a dense layer reads its flattened [C, H, W] input: as the grid its producer writes
    (read where it lies: no hand-over), unless the padding positions and channels it would
    read with weight 0 cost more MAC triggers than copying into a compact grid saves; None:
    as a flat vector (not a chained dense layer, or formats where padding cannot weigh 0)."""
    if layer.kind != "dense" or len(layer.in_shape) != 3 or layer.a_bits == 1 or \
            mac_bits(layer.w_bits, layer.a_bits) != layer.a_bits:  # (8- and 2-bit dot forms
        #                                                     hold a weight of 0 at any w_bits)
        return None
    c, h, w = layer.in_shape
    bits = layer.a_bits
    compact = (h, w, align_up(c * bits, 32))
    grid = producer.output_grid() if producer is not None else None
    if grid is None or grid[3] != bits:
        return compact
    chunks = -(-layer.out_features // (config.vector_width // 32))
    words = {g: g[0] * g[1] * g[2] // 32 for g in (compact, grid[:3])}
    extra = (words[grid[:3]] - words[compact]) * chunks  # MAC triggers on padding
    return grid[:3] if extra < 2 * words[compact] else compact  # the LSU: 2 cycles a word


def _cheap_sets(ascending: list[int], size: list[int], most: int = 48) -> list[set[int]]:
    """Sets of layers to stream, fewest bytes first: runs of layers of neighbouring sizes
    (a network just past the memory streams a few small layers rather than its largest)."""
    runs = {frozenset(ascending[a:b]) for a in range(len(ascending))
            for b in range(a + 1, len(ascending) + 1)}
    return [set(r) for r in sorted(runs, key=lambda r: (sum(size[i] for i in r), len(r)))][:most]


def _place(layers, streamed: set[int], plan, config: AccelConfig,
           overlap: bool = True, share: bool = True, zero: bool = False):
    """Plans with the resident constants from row 0 and each streamed layer's in a buffer
    above them (loaded by its own code from the off-chip memory), activations above both (from
    a bank boundary when a layer loads weights while it computes, so the DMA's writes never
    meet the core's). `zero`: a resident row of zeros for the vector unit's copies."""
    resident = Memory(config, share=share)
    mems = {i: resident for i in range(len(layers)) if i not in streamed}
    plans = [plan(i, layer, mems[i]) if i in mems else None for i, layer in enumerate(layers)]
    # after the layers' constants (any all-zero row among them serves)
    zero_row = resident.shared_row(bytes(resident.row), "the zero row") if zero else None
    # rows of the other bytes padding holds (an input's zero point, a max pool's -128), so
    # that the vector unit copies it too
    fill_rows = {} if zero_row is None else {0: zero_row, **{
        b: resident.shared_row(bytes([b]) * resident.row, f"the row of byte {b}")
        for b in sorted(_padding_bytes(layers) - {0})}}
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
    for p in plans:
        p.zero_row, p.fill_rows = zero_row, fill_rows
    if area.top > config.offchip.bytes:
        raise CompileError(f"the streamed constants ({area.top} bytes) do not fit the off-chip "
                           f"memory of accelerator '{config.name}' ({config.offchip.bytes} "
                           f"bytes)")
    # Each layer's activations start above its own constants (the resident ones and its
    # buffer): streamed layers reload theirs, so a later layer may overwrite them.
    scratch = [align_up(max(resident.top, mems[i].top),
                        config.bank_bytes if p.overlap else resident.row)
               for i, p in enumerate(plans)]
    return plans, scratch, base, resident.image, area


def _padding_bytes(layers) -> set[int]:
    """The bytes the padding of the layers' int8 inputs holds."""
    found = set()
    for la in layers:
        if isinstance(la, Conv2d) and la.a_bits == 8 and any(la.padding):
            found.add(la.pad_fill & 0xFF)
        elif isinstance(la, Pool) and la.op == "max" and any(la.padding):
            found.add(QMIN & 0xFF)
    return found


def _emit(plans: list[Plan], scratch: list[int], base: int, enc: Encoding,
          sources: dict[str, tuple] | None, area: Offchip,
          host_reads: frozenset[str] = frozenset(), cuts: frozenset[str] = frozenset()):
    """Every layer's code and binding, and the segments (layer names run in one go).

    With `sources`, one pass in program order decides which layers chain and where each
    layer's activations go (`_Arena`): its input buffers live from the first hand-over into
    them to its step, its output through its hand-over (or until an add reads it in place),
    and none may meet another live buffer or the constants a streamed layer loads when it
    starts. A consumer reads its producer's output in place where the layouts allow, else at
    the lowest or highest free place, each checked by emitting the plan there. A layer that
    cannot chain (an input from the host, row tiles, a format the host changes, a copy that
    is not affine in whole bytes, no room) starts a new run; runs read their inputs from and
    store their results to the off-chip memory. A program larger than the instruction memory
    is compiled again `compact`: the plans loop wherever their code repeats (a few cycles per
    loop iteration for code a fraction of the size)."""
    first = [p.emit(s, enc) for p, s in zip(plans, scratch)]
    names = [p.layer.name for p in plans]
    if not sources:
        return first, [Segment((n,), "compiled layer by layer") for n in names]
    index = {n: i for i, n in enumerate(names)}
    readers: dict[str, list[int]] = {}  # producer -> layers reading its output
    for j, n in enumerate(names):
        for src in sources.get(n, ()):
            if src.kind == "layer":
                readers.setdefault(src.name, []).append(j)
    binds = [b for _, b in first]
    row = plans[0].row
    vrow = row if plans[0].zero_row is not None else None
    vfill = frozenset(plans[0].fill_rows)  # padding bytes the vector unit copies from a row
    limit = plans[0].mem.limit
    imm = enc.imm_range[1]

    arena = _Arena()
    for j in range(len(plans)):  # a streamed layer's constants, loaded when it starts
        if scratch[j] > base:
            arena.add(_Region(base, scratch[j], 2 * j, 2 * j, j))
    where = list(scratch)
    copies: dict[int, list[tuple[int, int]]] = {}  # producer -> [(consumer, input)]
    starts: list[int] = []
    reasons: list[str] = []  # why each run starts where it does
    seg_start = 0
    for j, p in enumerate(plans):
        b = binds[j]
        src = sources.get(names[j], ())
        producers = [index.get(s.name, -1) if s.kind == "layer" else -1 for s in src]
        fed = j > 0 and len(src) == len(b.inputs) and names[j] not in cuts \
            and all(seg_start <= i < j and binds[i].tiles == 1 for i in producers) \
            and all(_same_values(plans[i].layer, p.layer, k) for k, i in enumerate(producers))
        if fed and p.free_layout:  # take the producers' grid when they share one
            grids = {(o.rows, o.cols, o.pos_bits) for o in (binds[i].output for i in producers)}
            if len(grids) == 1:
                p.geometry = grids.pop()
                binds[j] = b = p.emit(scratch[j], enc)[1]
        narrow = None  # the plan's own grid, when it took its producer's to read it
        if fed and len(producers) == 1 and b.tiles == 1:  # a producer's rows, read in place
            o, x = binds[producers[0]].output, b.inputs[0]
            old = (getattr(p, "cols", None), getattr(p, "s", None))
            if (o.cols, o.pos_bits, o.bits) != (x.cols, x.pos_bits, x.bits) and \
                    o.bits == x.bits and p.adopt_grid(o.cols, o.pos_bits):
                try:
                    wider = p.emit(scratch[j], enc)[1]
                except MemoryFitError:
                    wider = None
                if wider is not None and wider.tiles == 1 and \
                        _aliases(binds[producers[0]], wider, 0):
                    binds[j], b, narrow = wider, wider, (old, b)
                else:
                    p.cols, p.s = old
        laid = None  # the plan's own grid, when it took one its producer's rows keep to
        if fed and len(producers) == 1 and b.tiles == 1 and vrow and narrow is None:
            laid = _lay_out_for_rows(p, binds[producers[0]], b, scratch[j], enc, imm, vrow,
                                     vfill)
            if laid is not None:
                binds[j], b, laid = laid[1], laid[1], laid[0]
        chain = fed and b.tiles == 1 and b.im2col is None \
            and all(_copy(binds[i], b, k, imm, vrow, vfill) is not None
                    for k, i in enumerate(producers))
        align = p.config.bank_bytes if p.overlap else row
        at, alias, t_in = None, set(), 2 * j
        # a consumer that can read this output in place needs room above it: stay low
        read_in_place = any(_aliases(b, _widened(binds[c], plans[c], k, b.output), k)
                            for c in readers.get(names[j], ())
                            for k, s in enumerate(sources.get(names[c], ()))
                            if s.kind == "layer" and s.name == names[j])
        # an add reading this output in place later: keep it until then if there is room
        keep = max([2 * c for c in readers.get(names[j], ()) if plans[c].free_layout],
                   default=0)

        def parts(b, keep=keep):
            return _parts(b, scratch[j], row, t_in, j, p.external, keep)

        def fit(b):
            """The best place for b's buffers where the plan emits the same code shifted."""
            for kp in ((keep, 0) if keep else (0,)):
                spots = arena.fits_at(scratch[j], parts(b, kp), align, limit)
                for at in (sorted(spots) if read_in_place else spots):
                    if _same_shifted(p, b, at, scratch[j], enc):
                        return at
            return None
        if chain:
            t_in = 2 * min(producers) + 1  # the first hand-over into its inputs
            outs = [arena.out[i] for i in producers]
            if p.free_layout and all(_aliases(binds[i], b, k) and
                                     arena.keeps(outs[k], 2 * j, i)
                                     for k, i in enumerate(producers)):
                p.external = tuple(r.lo for r in outs)  # read every input where it lies
                ext = p.emit(scratch[j], enc)[1]
                ends = [r.t1 for r in outs]
                for r in outs:  # they live until this layer has read them
                    r.t1 = max(r.t1, 2 * j)
                at = fit(ext)
                if at is None:
                    p.external = None
                    for r, t1 in zip(outs, ends):
                        r.t1 = t1
                else:
                    binds[j], b, alias = ext, ext, set(enumerate(producers))
            for k, i in enumerate(producers):  # an input read where its producer left it
                if at is not None or not _aliases(binds[i], b, k):
                    continue
                cand = outs[k].lo - (b.inputs[k].addr - scratch[j])
                if cand >= scratch[j] and cand % align == 0 and \
                        _same_shifted(p, b, cand, scratch[j], enc):
                    for kp in ((keep, 0) if keep else (0,)):
                        if arena.fits(cand, parts(b, kp), limit, skip=outs[k]):
                            at, alias, keep = cand, {(k, i)}, kp
                            break
            if at is None and narrow is not None:  # not read in place: its own grid again
                (p.cols, p.s), b = narrow
                binds[j] = b
            if at is None:
                at = fit(b)
        if at is None and laid is not None:  # a run's input comes by DMA: its own grid
            p.cols, p.lead = laid
            binds[j] = b = p.emit(scratch[j], enc)[1]
        if at is None:
            why = _why_not(j, names, src, producers, seg_start, binds, plans, chain)
            if names[j] in cuts and why.startswith("no "):
                why = "the code handing its inputs over would not fit the instruction memory"
            chain, at, t_in = False, scratch[j], 2 * j
            seg_start = j
            starts.append(j)
            reasons.append(why)
        else:
            for k, i in enumerate(producers):
                if (k, i) not in alias:
                    copies.setdefault(i, []).append((j, k))
        where[j] = at
        placed = parts(b, keep)  # keep: as chosen above (0 when only that fitted)
        if keep and not arena.fits(at, placed, limit):
            placed = parts(b, 0)
        arena.place(j, at, placed)
    ends = set(s - 1 for s in starts[1:]) | {len(plans) - 1}
    shifted = [_shift(b, w - s, p.external) for b, w, s, p in zip(binds, where, scratch, plans)]
    run_of = {}
    for k, s0 in enumerate(starts):
        for m in range(s0, (starts + [len(plans)])[k + 1]):
            run_of[m] = k
    config = plans[0].config

    # Off-chip buffers of each run's inputs and results, after the constants; runs reuse the
    # same bytes (the host has read a run's results when the next run starts).
    act_base = align_up(area.top, row)
    cursor = [act_base, act_base]  # next free byte in this run, highest end of any run

    def take(n_bytes: int) -> int | None:
        ext = cursor[0]
        if ext + n_bytes > config.offchip.bytes:
            return None
        cursor[0] = ext + align_up(n_bytes, row)
        cursor[1] = max(cursor[1], cursor[0])
        return ext

    def offchip(layout, held: bool = False) -> tuple[int, int, int] | None:
        """An off-chip buffer for a row-aligned activation buffer: (address, rows, row); with
        `held`, only the rows up to its last value (a result the host reads: it decodes the
        values, never the padding)."""
        if not config.has_unit("dma") or layout.addr % row:
            return None
        n = -(-(layout.held_bytes if held else layout.size) // row)
        ext = take(n * row)
        return None if ext is None else (ext, n, layout.addr // row)

    emitted = []
    for i, p in enumerate(plans):
        p.handover = [_copy(shifted[i], shifted[j], k, imm, vrow, vfill)
                      for j, k in copies.get(i, [])]
        p.handover_to = [names[j] for j, _ in copies.get(i, [])]
        p.falls_through = i not in ends
        b = shifted[i]
        p.load_inputs, p.store_output = [], None
        p.tile_io = None
        if i in starts:
            cursor[0] = act_base
        if i in starts and b.tiles == 1:
            loads = [offchip(la) for la in b.inputs]
            p.load_inputs = loads if all(loads) else []
        elif i in starts and config.has_unit("dma") and b.inputs[0].addr % row == 0 \
                and b.output.addr % row == 0:
            p.tile_io = _tile_io(b, row, take)
        leaves = not readers.get(names[i]) or names[i] in host_reads or \
            any(run_of[c] != run_of[i] for c in readers.get(names[i], ()))
        if leaves and b.tiles == 1:
            p.store_output = offchip(b.output, held=True)
        lines, b = p.emit(where[i], enc)
        if b.inputs != shifted[i].inputs or b.output != shifted[i].output:
            raise CompileError(f"layer {names[i]}: its buffers moved with its scratch area "
                               f"in an unexpected way (the hand-over needs them shifted)")
        io = p.tile_io
        emitted.append((lines, replace(
            b, tiling={**b.tiling, "handover_cycles": p.handover_cycles},
            offchip_inputs=(io.ext_in,) if io else tuple(ext for ext, _, _ in p.load_inputs),
            offchip_output=io.ext_out if io else (p.store_output[0] if p.store_output
                                                  else None))))
    area.top = cursor[1]
    bounds = starts + [len(plans)]
    segments = []
    for k in range(len(starts)):
        run = range(bounds[k], bounds[k + 1])
        feeds = {m: [index[s.name] for s in sources.get(names[m], ()) if s.kind == "layer"]
                 for m in run}
        resumable = tuple(names[r] for r in run[1:]
                          if all(i >= r for m in run if m > r for i in feeds[m]))
        segments.append(Segment(tuple(names[m] for m in run), reasons[k], resumable))
    return emitted, segments


def _tile_io(b: LayerBinding, row: int, take) -> TileIO | None:
    """Off-chip room (from `take(bytes)`) for a row-tiled layer's whole padded input (or
    patches) and all its tiles' output rows, and how its tile loop walks them; None when it
    does not fit."""
    rt, in_l, out_l = b.row_tiling, b.inputs[0], b.output
    h = b.layer.out_shape[1] if b.im2col is not None else b.layer.in_grid[1]
    grid_rows = max(h + rt.padding[0] + rt.padding[2], (rt.tiles - 1) * rt.step + rt.in_rows)
    grid_row = in_l.cols * in_l.pos_bits // 8
    store = -(-out_l.size // row)
    ext_in = take((-(-grid_rows * grid_row // row) + 1) * row)  # + the last load's slack
    ext_out = take(rt.tiles * store * row) if ext_in is not None else None
    if ext_out is None:
        return None
    return TileIO(rt.tiles, ext_in, rt.step * grid_row, -(-in_l.size // row), in_l.addr // row,
                  ext_out, store * row, store, out_l.addr // row)


def _why_not(j: int, names, src, producers, seg_start, binds, plans, placeable: bool) -> str:
    """Why layer j starts a run of its own (for the placement report)."""
    b = binds[j]
    if not src or any(s.kind == "input" for s in src):
        return "reads the network's input"
    host = [s.name for s in src if s.kind == "host"]
    if host:
        return f"reads the host op {host[0]}"
    if b.tiles > 1 or any(binds[i].tiles > 1 for i in producers):
        tiled = names[j] if b.tiles > 1 else next(names[i] for i in producers if binds[i].tiles > 1)
        return f"row tiles ({tiled}'s activations do not fit the data memory at once)"
    early = [names[i] for i in producers if i < seg_start]
    if early:
        return f"reads {early[0]}, which ran in an earlier run"
    for k, i in enumerate(producers):
        if not _same_values(plans[i].layer, plans[j].layer, k):
            scale, bits = get_kind(plans[j].layer.kind).input_formats(plans[j].layer)[k]
            return (f"the host requantizes {names[i]}'s {plans[i].layer.out.kind} output to "
                    f"{bits}-bit values at scale {scale:.4g}")
    if b.im2col is not None:
        return "takes its input as patches"
    if placeable:
        return "no room for its buffers beside the ones live while it waits"
    return "no affine copy between its producers' layouts and its own"


def _same_values(producer: Layer, consumer: Layer, k: int) -> bool:
    """The host's hand-over (dequantize with the producer's scale, quantize with the consumer's
    input format) leaves the integers unchanged: same bits, and one scale for 8 and 2 bits
    (binary keeps the sign whatever the scales)."""
    scale, bits = get_kind(consumer.kind).input_formats(consumer)[k]
    out_bits = {"int8": 8, "ternary": 2, "binary": 1}.get(producer.out.kind)
    stored = mac_bits(consumer.w_bits, bits) if hasattr(consumer, "w_bits") else bits
    rq, thresholds = producer.out.requant, producer.out.thresholds
    if (bits, stored, out_bits) == (2, 8, 8) and rq is not None and np.all(rq.lo >= -1) \
            and np.all(rq.hi <= 1):  # ternary values as bytes
        return bool(np.all(np.asarray(producer.out.scale, np.float64) == scale))
    if (bits, stored, out_bits) == (1, 2, 2) and np.all(thresholds == -1):
        return True  # binary values as ternary codes (a sign at any scale)
    if out_bits != bits:
        return False
    return bits == 1 or bool(np.all(np.asarray(producer.out.scale, np.float64) == scale))


def _copy(producer: LayerBinding, consumer: LayerBinding, k: int, imm_max: int,
          row: int | None = None, fills: frozenset = frozenset({0})):
    """The hand-over of producer's output into consumer's input k, or None; by the vector
    unit when `row` is given (the program has a zero row) and the layouts allow: rows and
    parts of rows (`compiler.plans.lanes`; padding copied from the row of its byte, `fills`),
    else by `plan_copy` (whole-row positions by the vector unit, the rest by the LSU)."""
    rt = consumer.row_tiling
    padding = rt.padding if rt is not None else (0, 0, 0, 0)
    shape = _grid_of(consumer, k)
    lanes = plan_lanes(producer.output, consumer.inputs[k], shape, padding, row,
                       whole_rows=len(consumer.inputs) == 1, fills=fills) if row else None
    return lanes or plan_copy(producer.output, consumer.inputs[k], shape, padding[:2],
                              imm_max, row)


def _lay_out_for_rows(p: Plan, producer: LayerBinding, b: LayerBinding, scratch: int, enc,
                      imm_max: int, row: int, fills: frozenset):
    """When the hand-over from `producer` into b's input needs the LSU, the consumer's input
    grid laid out so that the vector unit copies it by rows: a pitch whose bytes are the
    producer's modulo a data row, and a first byte that puts the producer's first position
    where it lies in its row. Returns ((cols, lead) before, the new binding), or None."""
    o, x = producer.output, b.inputs[0]
    copy = _copy(producer, b, 0, imm_max, row, fills)
    if copy is None or isinstance(copy, LaneCopy) or o.pos_bits != x.pos_bits \
            or x.pos_bits % 32 or b.row_tiling is None:
        return None
    size = x.pos_bits // 8
    cols = next((n for n in range(x.cols, x.cols + row + 1)
                 if (n - o.cols) * size % row == 0), None)
    if cols is None:
        return None
    pt, pl = b.row_tiling.padding[:2]
    old = (getattr(p, "cols", None), getattr(p, "lead", 0))
    first = o.addr + (o.origin[0] * o.cols + o.origin[1]) * size
    lead = (first - scratch - ((x.origin[0] + pt) * cols + x.origin[1] + pl) * size) % row
    if not p.lay_out_input(cols, lead):
        return None
    try:
        wide = p.emit(scratch, enc)[1]
    except MemoryFitError:
        wide = None
    if wide is not None and wide.tiles == 1 and \
            isinstance(_copy(producer, wide, 0, imm_max, row, fills), LaneCopy):
        return old, wide
    p.cols, p.lead = old
    return None


def _shift(b: LayerBinding, delta: int, external: tuple | None) -> LayerBinding:
    """b with its own activation buffers `delta` bytes higher (inputs it reads where their
    producers left them stay)."""
    ext = external or (None,) * len(b.inputs)
    return replace(b, inputs=tuple(la if e is not None else replace(la, addr=la.addr + delta)
                                   for la, e in zip(b.inputs, ext)),
                   output=replace(b.output, addr=b.output.addr + delta))


@dataclass
class _Region:
    """Bytes [lo, hi) live from step t0 to t1 (layer j computes at step 2j and hands its
    output over at 2j + 1)."""

    lo: int
    hi: int
    t0: int
    t1: int
    owner: int

    def meets(self, lo: int, hi: int, t0: int, t1: int) -> bool:
        return lo < self.hi and self.lo < hi and t0 <= self.t1 and self.t0 <= t1


def _parts(b: LayerBinding, scratch: int, row: int, t_in: int, j: int, external=None,
           keep: int = 0):
    """A layer's own buffers relative to its scratch: its inputs (live from the first hand-over
    into them to its step; not those it reads where their producers left them) and its output
    (its step and hand-over, or until step `keep`); (offset, length, t0, t1)."""
    ins = [la for la, e in zip(b.inputs, external or (None,) * len(b.inputs)) if e is None]
    parts = []
    if ins:
        parts.append((0, align_up(max(la.addr + la.size for la in ins) - scratch, row),
                      t_in, 2 * j))
    out = b.output
    parts.append((out.addr - scratch, align_up(out.size, row), 2 * j, max(2 * j + 1, keep)))
    return parts


class _Arena:
    """The data memory's activation buffers over the steps of a network run."""

    def __init__(self):
        self.regions: list[_Region] = []
        self.out: dict[int, _Region] = {}  # each layer's output buffer

    def add(self, r: _Region) -> None:
        self.regions.append(r)

    def place(self, j: int, at: int, parts) -> None:
        for k, (off, n, t0, t1) in enumerate(parts):
            r = _Region(at + off, at + off + n, t0, t1, j)
            self.add(r)
            if k == len(parts) - 1:
                self.out[j] = r

    def fits(self, at: int, parts, limit: int, skip: _Region | None = None) -> bool:
        """Every part meets no live region (the input part may lie in `skip`: the buffer it
        reads in place)."""
        return all(at + off + n <= limit and not any(
            (r is not skip or off != 0) and r.meets(at + off, at + off + n, t0, t1)
            for r in self.regions) for off, n, t0, t1 in parts)

    def keeps(self, r: _Region, until: int, owner: int) -> bool:
        """Nothing but its owner uses r's bytes from its end until step `until`."""
        return not any(o is not r and o.owner != owner and o.meets(r.lo, r.hi, r.t1 + 1, until)
                       for o in self.regions)

    def fits_at(self, lo: int, parts, align: int, limit: int) -> list[int]:
        """The lowest and the highest aligned address from lo where every part meets no live
        region, the one that leaves the larger free gap when the next hand-over writes first
        (outputs at alternate ends keep the memory in two pieces, not three)."""
        t = max(t1 for *_, t1 in parts)
        found = {self._fit(lo, parts, align, limit, 1), self._fit(lo, parts, align, limit, -1)}
        found.discard(None)
        return sorted(found, key=lambda at: (-self._gap(lo, limit, t, at, parts), at))

    def _fit(self, lo: int, parts, align: int, limit: int, way: int) -> int | None:
        end = max(off + n for off, n, *_ in parts)
        at = align_up(lo, align) if way > 0 else (limit - end) // align * align
        moved = True
        while moved and lo <= at and at + end <= limit:
            moved = False
            for off, n, t0, t1 in parts:
                for r in self.regions:
                    if r.meets(at + off, at + off + n, t0, t1):
                        at = align_up(r.hi - off, align) if way > 0 else \
                            (r.lo - off - n) // align * align
                        moved = True
        return at if lo <= at and at + end <= limit else None

    def _gap(self, lo: int, limit: int, t: int, at: int, parts) -> int:
        """The largest free run of bytes in [lo, limit) at step t, with `parts` placed at."""
        busy = sorted([(r.lo, r.hi) for r in self.regions if r.t0 <= t <= r.t1] +
                      [(at + off, at + off + n) for off, n, t0, t1 in parts if t0 <= t <= t1])
        best, edge = 0, lo
        for a, e in busy:
            best, edge = max(best, a - edge), max(edge, e)
        return max(best, limit - edge)


def _same_shifted(p: Plan, b: LayerBinding, at: int, scratch: int, enc: Encoding) -> bool:
    """Emitted at `at`, the plan's buffers are b's shifted there (no row tiles appear: the
    plans' own fit tests are more cautious than the buffers' sizes)."""
    try:
        moved = p.emit(at, enc)[1] if at != scratch else b
    except MemoryFitError:
        return False
    want = _shift(b, at - scratch, p.external)
    return moved.tiles == 1 and moved.inputs == want.inputs and moved.output == want.output


def _widened(b: LayerBinding, p: Plan, k: int, out: Layout) -> LayerBinding:
    """b as it would read input k from grid `out` (its width and position bits), if its plan
    can (`adopt_grid`)."""
    x, conv = b.inputs[k], getattr(p, "conv", None)
    if conv is None or any(conv.padding) or p.im2col is not None or out.cols < x.cols:
        return b
    pos_bits = out.pos_bits if out.pos_bits != x.pos_bits and out.pos_bits % 32 == 0 and \
        p.pitch_free(out.pos_bits // 32) else x.pos_bits
    return replace(b, inputs=tuple(replace(la, cols=out.cols, pos_bits=pos_bits) if i == k
                                   else la for i, la in enumerate(b.inputs)))


def _grid_of(b: LayerBinding, k: int) -> tuple[int, int, int]:
    """Input k as (C, H, W) the way b's layout holds it: a dense layer reading its flattened
    input as a grid (`_dense_grid`) holds it unflattened."""
    x = b.inputs[k]
    if b.layer.kind == "dense" and x.shape == tuple(b.layer.in_shape):
        return x.shape
    return input_grid(b.layer, k)


def _aliases(producer: LayerBinding, consumer: LayerBinding, k: int) -> bool:
    """Consumer input k can be the producer's output buffer itself: the same grid width, pitch
    and format (its rows a prefix of the producer's), no padding around it, and its padding
    channels either absent or free to hold anything (8 and 2 bits)."""
    o, x = producer.output, consumer.inputs[k]
    rt = consumer.row_tiling
    return (rt is None or tuple(rt.padding) == (0, 0, 0, 0)) \
        and o.shape == _grid_of(consumer, k) \
        and (o.cols, o.pos_bits, o.bits, o.origin) == (x.cols, x.pos_bits, x.bits, x.origin) \
        and x.rows <= o.rows and x.size <= o.size \
        and (o.bits in (8, 2) or o.shape[0] * o.bits == o.pos_bits)
