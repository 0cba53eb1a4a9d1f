"""Differential testing of the RTL against the golden model on random programs, for any config.

Both engines start from one random data memory and one random off-chip memory; after each
program its final state and both whole memories are compared, then the bytes it changed are
restored, so large memories are written once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from hw.asm import assemble
from hw.config import AccelConfig
from hw.errors import SimulationError
from hw.fuzz import random_program
from hw.golden import GoldenModel
from hw.sim import RtlSimulator


@dataclass(frozen=True)
class Mismatch:
    seed: int
    what: str
    program: str


def diff_random_programs(config: AccelConfig, count: int, seed: int = 0,
                         max_cycles: int = 100_000) -> list[Mismatch]:
    golden, rtl = GoldenModel(config), RtlSimulator(config)
    rng = np.random.default_rng(seed)
    memory = rng.integers(0, 256, config.dmem_bytes, dtype=np.uint8)
    offchip = rng.integers(0, 256, config.offchip.bytes, dtype=np.uint8)
    for m in (golden, rtl):
        m.write_dmem(0, memory)
        m.write_offchip(0, offchip)
    mismatches = []
    for k in range(seed, seed + count):
        text = random_program(golden.encoding, random.Random(k))
        prog = assemble(text, golden.encoding, name=f"random-{k}")
        outcome = []
        for m in (golden, rtl):
            m.reset()
            m.load_program(prog)
            try:
                cycles = m.run(max_cycles).cycles
            except SimulationError:
                cycles = None
            outcome.append((cycles, m.state()))
        final_g = golden.read_dmem(0, config.dmem_bytes)
        final_r = rtl.read_dmem(0, config.dmem_bytes)
        off_g = golden.read_offchip(0, config.offchip.bytes)
        off_r = rtl.read_offchip(0, config.offchip.bytes)
        if outcome[0] != outcome[1]:
            mismatches.append(Mismatch(k, "cycles or final state", text))
        elif not np.array_equal(final_g, final_r):
            mismatches.append(Mismatch(k, "data memory", text))
        elif not np.array_equal(off_g, off_r):
            mismatches.append(Mismatch(k, "off-chip memory", text))
        touched = np.flatnonzero((off_g != offchip) | (off_r != offchip))
        if len(touched):  # restore the off-chip bytes the program wrote
            lo, hi = int(touched[0]), int(touched[-1]) + 1
            for m in (golden, rtl):
                m.write_offchip(lo, offchip[lo:hi])
        changed = np.flatnonzero((final_g != memory) | (final_r != memory))
        if len(changed):  # restore the words the program touched
            lo, hi = int(changed[0]), int(changed[-1]) + 1
            for m in (golden, rtl):
                m.write_dmem(lo, memory[lo:hi])
    return mismatches
