"""The analytic estimator: event counters of every layer from the generated schedule, without
simulation.

Every layer is straight-line blocks with execution counts fixed at compile time
(`LayerBinding.blocks`). The estimator decodes each instruction of the program once into the
events its moves cause (the golden model's counting rules, hw/ISA.md: `event_table`), then a
layer's counters are its instructions' events weighted by their execution counts, plus what the
compiler states per block (the DMA's transfers and the stalls of its waits, which it knows from
the DMA's timing); the energy model turns counters into joules. Cycles are instructions executed
(one per cycle) plus those stalls.
"""

from __future__ import annotations

import numpy as np

from compiler.program import CompiledProgram, LayerBinding
from hw.isa import Encoding, counter_names
from hw.units import UNITS, op_spec


def _destination_events(enc: Encoding, names: list[str]) -> np.ndarray:
    """[destination id, counter]: the events one executed move to that destination causes
    (besides its bus move and register read): the op table's events of a trigger."""
    width = enc.config.vector_width
    index = {n: i for i, n in enumerate(names)}
    table = np.zeros((1 << enc.dst_bits, len(names)), np.int64)
    for d, dst in enumerate(enc.dests):
        ev = table[d]
        if d == 0:
            continue
        if dst.startswith("r") and dst[1:].isdigit():
            ev[index["rf_writes"]] += 1
        unit, _, port = dst.partition(".")
        if unit not in UNITS or port not in UNITS[unit].opcodes:
            continue
        ev[index[f"trig_{unit}"]] += 1
        for name, n in op_spec(unit, port).events(width).items():
            ev[index[name]] += n
    return table


def event_table(compiled: CompiledProgram) -> tuple[np.ndarray, np.ndarray]:
    """[instruction, counter] events of the unguarded and of the guarded moves of every
    instruction (guarded moves count only when their guard holds). Cached on the program."""
    cached = getattr(compiled, "_event_table", None)
    if cached is not None:
        return cached
    enc = compiled.program.encoding
    c = enc.config
    names = counter_names(c)
    dst_events = _destination_events(enc, names)
    bus = [names.index(f"moves_bus{b}") for b in range(c.buses)]
    rf_read = names.index("rf_reads")
    n = len(compiled.program.words)
    dst = np.zeros((c.buses, n), np.int64)
    src = np.zeros((c.buses, n), np.int64)
    grd = np.zeros((c.buses, n), np.int64)
    sb, db, srcb = enc.slot_bits, enc.dst_bits, enc.src_bits
    for i, word in enumerate(compiled.program.words):
        for slot in range(c.buses):
            s = word >> (slot * sb)
            dst[slot, i] = s & ((1 << db) - 1)
            src[slot, i] = (s >> db) & ((1 << srcb) - 1)
            grd[slot, i] = (s >> (db + srcb)) & ((1 << enc.guard_bits) - 1)
    tables = []
    for guarded in (False, True):
        ev = np.zeros((n, len(names)), np.int64)
        for slot in range(c.buses):
            live = (dst[slot] != 0) & ((grd[slot] != 0) == guarded)
            ev += dst_events[dst[slot]] * live[:, None]
            ev[:, bus[slot]] += live
            is_reg = (src[slot] >> enc.src_value_bits == 0) & (src[slot] < c.registers)
            ev[:, rf_read] += live & is_reg
        tables.append(ev)
    compiled._event_table = tuple(tables)
    return compiled._event_table


def estimate_layer(compiled: CompiledProgram, binding: LayerBinding) -> dict[str, int]:
    """Counters of one run of a layer (all its row tiles), as the RTL would report them."""
    plain, guarded = event_table(compiled)
    names = counter_names(compiled.config)
    n = sum(b.length for b in binding.blocks)
    count = np.zeros(n, np.int64)
    taken = np.zeros(n, np.int64)
    for b in binding.blocks:
        count[b.start:b.start + b.length] = b.count
        taken[b.start:b.start + b.length] = b.count
        taken[b.start + b.length - 1] -= b.exits  # the loop's jump falls through
    rows = slice(binding.entry, binding.entry + n)
    total = (count @ plain[rows] + taken @ guarded[rows]) * binding.host_runs
    counters = dict(zip(names, (int(v) for v in total)))
    counters["cycles"] = int(count.sum()) * binding.host_runs
    for b in binding.blocks:  # stalls and DMA traffic the compiler knows per execution
        counters["cycles"] += b.stall * b.count * binding.host_runs
        for name, k in b.events:
            counters[name] += k * b.count * binding.host_runs
    return counters


def estimate(compiled: CompiledProgram) -> dict[str, dict[str, int]]:
    """Counters per layer, in program order."""
    return {name: estimate_layer(compiled, b) for name, b in compiled.layers.items()}
