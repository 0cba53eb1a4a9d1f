"""Random valid programs for differential testing of the RTL against the golden model.

Every program halts: jumps go forward, except one structured loop per program that runs its
body exactly twice under a guard register reserved for it. Everything else is random: moves
between any source and any destination, guards, immediates, operand/trigger orderings, and
reads of result ports before, at and after the unit latency.
"""

from __future__ import annotations

import random

from hw.isa import Encoding
from hw.units import UNITS

LOOP_GUARD_NOTE = "the last guard register is reserved for the structured loop"


def random_program(enc: Encoding, rng: random.Random, length: int | None = None) -> str:
    c = enc.config
    n = max(5, length or rng.randint(5, 40))
    loop_bool = c.bool_registers - 1  # reserved for the loop
    free_bools = [f"b{i}" for i in range(c.bool_registers - 1)]
    lo, hi = enc.imm_range
    dests = [d for d in enc.dests[1:] if not d.startswith("ctrl.") and d != f"b{loop_bool}"]
    # Destination groups, drawn evenly so that operand ports are written as often as triggers.
    operands = {f"{u}.{p}" for u, spec in UNITS.items() for p in spec.operands}
    groups = [[d for d in dests if "." not in d],
              [d for d in dests if d in operands],
              [d for d in dests if "." in d and d not in operands]]
    results = [s for s in enc.sources if "." in s]
    storage = [s for s in enc.sources if "." not in s]

    def imm() -> int:
        r = rng.random()
        if r < 0.4:
            return rng.randint(max(lo, -8), min(hi, 40))
        return rng.randint(lo, hi)

    def move() -> str:
        r = rng.random()
        src = str(imm()) if r < 0.4 else rng.choice(results if r < 0.7 else storage)
        guard = ""
        if rng.random() < 0.25:
            b = rng.choice(free_bools + [f"b{loop_bool}"])
            guard = f"?{'!' if rng.random() < 0.5 else ''}{b} "
        return f"{guard}{src} -> {rng.choice(rng.choice(groups))}"

    loop_start, loop_end = sorted(rng.sample(range(1, n - 1), 2)) if n > 4 else (1, 2)
    lines = []
    for i in range(n):
        moves = [move() for _ in range(c.buses) if rng.random() < 0.7]
        label = ""
        if i == loop_start - 1:
            moves = [f"0 -> b{loop_bool}"] + moves[:c.buses - 1]
        if i == loop_start:
            label = "loop: "
        if i == loop_end:
            # Runs the body again once: set the guard and jump back only while it is clear.
            moves = [f"?!b{loop_bool} 1 -> b{loop_bool}", f"?!b{loop_bool} @loop -> ctrl.jump"]
            moves += [m for m in (move() for _ in range(c.buses - 2))
                      if not m.endswith(f"b{loop_bool}")]
            moves = moves[:c.buses]
        elif i > loop_end and rng.random() < 0.15 and i + 1 < n:
            target = rng.randint(i + 1, n)
            moves = moves[:c.buses - 1] + [f"{_guard(rng, free_bools)}{target} -> ctrl.jump"]
        if i == n - 1:
            moves = moves[:c.buses - 1] + ["0 -> ctrl.halt"]
        lines.append(label + (", ".join(moves) if moves else "nop"))
    lines.append("0 -> ctrl.halt")  # the target of a jump past the end
    return "\n".join(lines) + "\n"


def _guard(rng: random.Random, bools: list[str]) -> str:
    if not bools or rng.random() < 0.3:
        return ""
    return f"?{'!' if rng.random() < 0.5 else ''}{rng.choice(bools)} "


def shrink(text: str, fails, max_rounds: int = 8) -> str:
    """A smaller program on which `fails(text)` still holds.

    Replaces whole instructions with `nop` (addresses and jump targets stay put), then drops
    single moves, until nothing more can go. Every candidate is checked with `fails`.
    """
    lines = text.splitlines()
    for _ in range(max_rounds):
        changed = False
        for i, line in enumerate(lines):
            label, _, body = (line.rpartition("loop: ") if line.startswith("loop: ")
                              else ("", "", line))
            prefix = "loop: " if line.startswith("loop: ") else ""
            if body in ("nop", "0 -> ctrl.halt"):
                continue
            candidates = [prefix + "nop"]
            moves = [m.strip() for m in body.split(",")]
            if len(moves) > 1:
                candidates += [prefix + ", ".join(moves[:k] + moves[k + 1:])
                               for k in range(len(moves))]
            for cand in candidates:
                trial = lines[:i] + [cand] + lines[i + 1:]
                if fails("\n".join(trial) + "\n"):
                    lines, changed = trial, True
                    break
        if not changed:
            break
    return "\n".join(lines) + "\n"
