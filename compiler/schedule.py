"""A cycle-exact move scheduler for straight-line TTA code.

Code is built from rigid *chains*: moves at fixed cycle offsets, where each result is read
exactly `latency` cycles after its trigger and every operand is moved in its trigger's cycle.
Reading a result at exactly trigger + latency is always safe: no other trigger of that unit can
share the cycle, so no later result can have replaced it. A chain is placed at the earliest start
where every move finds a free bus and a free destination port; units whose internal state
carries across operations (the vector MAC's accumulators) keep their triggers in program order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from hw.config import AccelConfig
from hw.units import UNITS

IN_ORDER_UNITS = ("vmac",)
WINDOW = 24  # how far before the previous chain a new chain may be slotted in


@dataclass(frozen=True)
class TimedMove:
    offset: int
    src: str
    dst: str

    @property
    def port(self) -> str:
        """The physical port written: all opcodes of a unit share its trigger port."""
        unit, _, name = self.dst.partition(".")
        spec = UNITS.get(unit)
        return f"{unit}.trigger" if spec and name in spec.opcodes else self.dst


class Timeline:
    def __init__(self, config: AccelConfig, start: int = 0):
        self.buses = config.buses
        self.moves: dict[int, list[str]] = defaultdict(list)
        self.ports: dict[int, set[str]] = defaultdict(set)
        self.last_in_order: dict[str, int] = {u: -1 for u in IN_ORDER_UNITS}
        self.floor = start  # no chain is placed before this cycle
        self.last_start = start
        self.end = start  # one past the last occupied cycle

    def _fits(self, start: int, chain: list[TimedMove]) -> bool:
        used: dict[int, int] = defaultdict(int)  # moves this chain adds per cycle
        for m in chain:
            c = start + m.offset
            used[c] += 1
            if len(self.moves[c]) + used[c] > self.buses or m.port in self.ports[c]:
                return False
            unit = m.dst.split(".")[0]
            if m.port.endswith(".trigger") and unit in self.last_in_order \
                    and c <= self.last_in_order[unit]:
                return False
        return True

    def place(self, chain: list[TimedMove], min_start: int = 0) -> int:
        """Place a chain at its earliest feasible start (not before `min_start`); returns it."""
        base = min(m.offset for m in chain)
        chain = [TimedMove(m.offset - base, m.src, m.dst) for m in chain]
        start = max(self.floor, self.last_start - WINDOW, min_start)
        while not self._fits(start, chain):
            start += 1
        for m in chain:
            c = start + m.offset
            self.moves[c].append(f"{m.src} -> {m.dst}")
            self.ports[c].add(m.port)
            unit = m.dst.split(".")[0]
            if m.port.endswith(".trigger") and unit in self.last_in_order:
                self.last_in_order[unit] = max(self.last_in_order[unit], c)
            self.end = max(self.end, c + 1)
        self.last_start = start
        return start

    def barrier(self) -> None:
        """Later chains start after everything placed so far."""
        self.floor = self.last_start = self.end

    def lines(self, halt: bool = True) -> list[str]:
        """One instruction per cycle; the last one also halts."""
        out = [", ".join(self.moves.get(c, [])) or "nop" for c in range(self.end)]
        if halt:
            if out and len(self.moves.get(self.end - 1, [])) < self.buses \
                    and "ctrl.trigger" not in self.ports.get(self.end - 1, set()):
                out[-1] = "0 -> ctrl.halt" if out[-1] == "nop" else out[-1] + ", 0 -> ctrl.halt"
            else:
                out.append("0 -> ctrl.halt")
        return out
