"""The instruction set, derived from an `AccelConfig`: port names, ids and the binary encoding.

An instruction holds one move slot per bus. A slot, least significant field first:

    dst (D bits) | src (S bits) | guard (G bits)

- dst: 0 = no move; then r0.., b0.., then each unit's operand ports and trigger opcodes.
- src: top bit set = short immediate (low `short_imm_bits`, sign-extended); else an id:
  r0.., b0.., then each unit's result ports.
- guard: 0 = always; 1 + 2k = if bk; 2 + 2k = if not bk.

Slot 0 occupies the least significant bits of the instruction word. See hw/ISA.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from hw.config import AccelConfig
from hw.units import PRECISIONS, UNITS


def bits_for(n: int) -> int:
    """Bits needed to hold the values 0..n-1 (at least 1)."""
    return max(1, (n - 1).bit_length())


@dataclass(frozen=True)
class Move:
    guard: int  # encoded guard field
    src: int  # encoded source field (immediate flag included)
    dst: int  # encoded destination id, 0 = none


@dataclass(frozen=True)
class Instruction:
    moves: tuple[Move, ...]  # exactly one per bus; unused slots have dst == 0


class Encoding:
    """Names, ids and field widths of one accelerator config."""

    def __init__(self, config: AccelConfig):
        self.config = config
        c = config
        self.sources: list[str] = [f"r{i}" for i in range(c.registers)]
        self.sources += [f"b{i}" for i in range(c.bool_registers)]
        self.dests: list[str] = ["-"] + [f"r{i}" for i in range(c.registers)]
        self.dests += [f"b{i}" for i in range(c.bool_registers)]
        self.unit_op_base: dict[str, int] = {}
        for name in c.unit_names:
            spec = UNITS[name]
            self.sources += [f"{name}.{p}" for p in spec.results]
            self.dests += [f"{name}.{p}" for p in spec.operands]
            self.unit_op_base[name] = len(self.dests)
            self.dests += [f"{name}.{op}" for op in spec.opcodes]
        self.src_id = {n: i for i, n in enumerate(self.sources)}
        self.dst_id = {n: i for i, n in enumerate(self.dests)}

        self.imm_bits = c.short_imm_bits
        self.src_value_bits = max(self.imm_bits, bits_for(len(self.sources)))
        self.src_bits = 1 + self.src_value_bits
        self.dst_bits = bits_for(len(self.dests))
        self.guard_bits = bits_for(1 + 2 * c.bool_registers)
        self.slot_bits = self.dst_bits + self.src_bits + self.guard_bits
        self.width = self.slot_bits * c.buses
        self.words = (self.width + 31) // 32  # 32-bit words per instruction in the harness

    # --- immediates -------------------------------------------------------------------------
    @cached_property
    def imm_range(self) -> tuple[int, int]:
        return -(1 << (self.imm_bits - 1)), (1 << (self.imm_bits - 1)) - 1

    def imm_src(self, value: int) -> int:
        return (1 << self.src_value_bits) | (value & ((1 << self.imm_bits) - 1))

    def is_imm(self, src: int) -> bool:
        return bool(src >> self.src_value_bits)

    def imm_value(self, src: int) -> int:
        v = src & ((1 << self.imm_bits) - 1)
        return v - (1 << self.imm_bits) if v >> (self.imm_bits - 1) else v

    # --- guards -----------------------------------------------------------------------------
    @staticmethod
    def guard_field(bool_reg: int, negate: bool) -> int:
        return 1 + 2 * bool_reg + int(negate)

    # --- instruction words ------------------------------------------------------------------
    def encode(self, instr: Instruction) -> int:
        word = 0
        for slot, m in enumerate(instr.moves):
            s = m.dst | (m.src << self.dst_bits) | (m.guard << (self.dst_bits + self.src_bits))
            word |= s << (slot * self.slot_bits)
        return word

    def decode(self, word: int) -> Instruction:
        moves = []
        mask = (1 << self.slot_bits) - 1
        for slot in range(self.config.buses):
            s = (word >> (slot * self.slot_bits)) & mask
            moves.append(Move(
                guard=s >> (self.dst_bits + self.src_bits),
                src=(s >> self.dst_bits) & ((1 << self.src_bits) - 1),
                dst=s & ((1 << self.dst_bits) - 1),
            ))
        return Instruction(tuple(moves))

    def to_words(self, word: int) -> list[int]:
        """An instruction as little-endian 32-bit words, as the harness loads it."""
        return [(word >> (32 * i)) & 0xFFFFFFFF for i in range(self.words)]

    def nop(self) -> Instruction:
        return Instruction(tuple(Move(0, 0, 0) for _ in range(self.config.buses)))


# Counters, in the order the RTL numbers them (the header generator reads this list).
def counter_names(config: AccelConfig) -> list[str]:
    names = ["cycles", "stall_cycles", "rf_reads", "rf_writes", "dmem_read_bits",
             "dmem_write_bits", "dma_stall_cycles", "offchip_read_bits", "offchip_write_bits"]
    names += [f"vmac_mac{bits}" for bits, _, _ in PRECISIONS.values()]
    names += ["vpp_groups"]  # post-processing triggers, each on W/8 lanes
    names += [f"trig_{u}" for u in UNITS]
    names += [f"moves_bus{b}" for b in range(config.buses)]
    return names
