"""Assembler and disassembler: program text <-> binary image, for one accelerator config.

Syntax, one instruction per line (see hw/ISA.md):

    loop:  r1 -> alu.in1, 1 -> alu.add        # moves separated by commas, one per bus
           ?b0 @loop -> ctrl.jump, _, alu.res -> r1   # guard ?bK / ?!bK; `_` leaves a slot empty
           nop
           0 -> ctrl.halt

Sources: registers r0.., guard registers b0.., result ports (`alu.res`), integers (short
immediates) and `@label` (a label's address as an immediate). Destinations: registers, guard
registers, operand ports (`alu.in1`) and opcodes, which write the unit's trigger port (`alu.add`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from hw.errors import AssemblyError
from hw.isa import Encoding, Instruction, Move

_LABEL = re.compile(r"^([A-Za-z_][\w.]*):\s*")
_MOVE = re.compile(r"^(?:\?(!?)b(\d+)\s+)?(\S+)\s*->\s*(\S+)$")


@dataclass
class Program:
    """A binary program image: one integer per instruction, plus the labels it was built with."""

    encoding: Encoding
    words: list[int]
    labels: dict[str, int] = field(default_factory=dict)

    def harness_words(self) -> np.ndarray:
        """Instructions as consecutive little-endian 32-bit words, as the harness loads them."""
        enc = self.encoding
        out = np.zeros(len(self.words) * enc.words, dtype=np.uint32)
        for i, w in enumerate(self.words):
            out[i * enc.words:(i + 1) * enc.words] = enc.to_words(w)
        return out


def _parse_int(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def assemble(text: str, encoding: Encoding, name: str = "<program>") -> Program:
    """Assemble program text; errors name the line and the offending token."""
    lines: list[tuple[int, str]] = []
    labels: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        while (m := _LABEL.match(line)):
            if m.group(1) in labels:
                raise AssemblyError(f"{name}:{lineno}: label '{m.group(1)}' defined twice")
            labels[m.group(1)] = len(lines)
            line = line[m.end():]
        if line:
            lines.append((lineno, line))
    if len(lines) > encoding.config.imem_depth:
        raise AssemblyError(f"{name}: {len(lines)} instructions do not fit the instruction "
                            f"memory of {encoding.config.imem_depth}")
    words = [encoding.encode(_instruction(line, lineno, encoding, labels, name))
             for lineno, line in lines]
    return Program(encoding, words, labels)


def _instruction(line: str, lineno: int, enc: Encoding, labels: dict[str, int],
                 name: str) -> Instruction:
    where = f"{name}:{lineno}"
    parts = [] if line == "nop" else [p.strip() for p in line.split(",")]
    if len(parts) > enc.config.buses:
        raise AssemblyError(f"{where}: {len(parts)} moves but the accelerator has "
                            f"{enc.config.buses} buses")
    moves = []
    for part in parts:
        if part == "_":
            moves.append(Move(0, 0, 0))
            continue
        m = _MOVE.match(part)
        if not m:
            raise AssemblyError(f"{where}: cannot read move '{part}'; expected "
                                f"'[?bK|?!bK] SOURCE -> DEST'")
        negate, breg, src_text, dst_text = m.groups()
        guard = 0
        if breg is not None:
            if int(breg) >= enc.config.bool_registers:
                raise AssemblyError(f"{where}: guard register b{breg} does not exist "
                                    f"(b0..b{enc.config.bool_registers - 1})")
            guard = enc.guard_field(int(breg), bool(negate))
        if dst_text not in enc.dst_id or dst_text == "-":
            raise AssemblyError(f"{where}: unknown destination '{dst_text}'; "
                                f"allowed: {', '.join(enc.dests[1:])}")
        moves.append(Move(guard, _source(src_text, where, enc, labels), enc.dst_id[dst_text]))
    moves += [Move(0, 0, 0)] * (enc.config.buses - len(moves))
    return Instruction(tuple(moves))


def _source(text: str, where: str, enc: Encoding, labels: dict[str, int]) -> int:
    if text.startswith("@"):
        if text[1:] not in labels:
            raise AssemblyError(f"{where}: unknown label '{text[1:]}'")
        value = labels[text[1:]]
    elif (value := _parse_int(text)) is None:
        if text not in enc.src_id:
            raise AssemblyError(f"{where}: unknown source '{text}'; allowed: an integer, "
                                f"@label, {', '.join(enc.sources)}")
        return enc.src_id[text]
    lo, hi = enc.imm_range
    if not lo <= value <= hi:
        raise AssemblyError(f"{where}: immediate {value} does not fit {enc.imm_bits} bits "
                            f"({lo}..{hi})")
    return enc.imm_src(value)


def disassemble_instruction(word: int, enc: Encoding) -> str:
    instr = enc.decode(word)
    parts = []
    for m in instr.moves:
        if m.dst == 0:
            parts.append("_")
            continue
        if m.dst >= len(enc.dests):
            raise AssemblyError(f"invalid destination id {m.dst} in instruction {word:#x}")
        if enc.is_imm(m.src):
            src = str(enc.imm_value(m.src))
        elif m.src < len(enc.sources):
            src = enc.sources[m.src]
        else:
            raise AssemblyError(f"invalid source id {m.src} in instruction {word:#x}")
        guard = ""
        if m.guard:
            k, neg = divmod(m.guard - 1, 2)
            if k >= enc.config.bool_registers:
                raise AssemblyError(f"invalid guard {m.guard} in instruction {word:#x}")
            guard = f"?{'!' if neg else ''}b{k} "
        parts.append(f"{guard}{src} -> {enc.dests[m.dst]}")
    while parts and parts[-1] == "_":
        parts.pop()
    return ", ".join(parts) if parts else "nop"


def disassemble(program: Program) -> str:
    return "\n".join(disassemble_instruction(w, program.encoding) for w in program.words) + "\n"
