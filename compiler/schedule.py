"""A cycle-exact move scheduler for straight-line TTA code.

Code is built from rigid *chains*: moves at fixed cycle offsets, where each result is read
exactly `latency` cycles after its trigger and every operand is moved in its trigger's cycle.
Reading a result at exactly trigger + latency is always safe: no other trigger of that unit can
share the cycle, so no later result can have replaced it. A chain is placed at the earliest start
where every move finds a free bus and a free destination port; units whose internal state
carries across operations (the vector MAC's accumulators) keep their triggers in program order.
An LSU access and a vector-unit memory access of the same kind (both reads or both writes) never
share a cycle, so generated code never stalls on a bank conflict whatever the addresses.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from hw.config import AccelConfig
from hw.units import UNITS, op_spec

IN_ORDER_UNITS = ("vmac",)
WINDOW = 24  # how far before the previous chain a new chain may be slotted in


@dataclass(frozen=True)
class TimedMove:
    offset: int
    src: str
    dst: str

    @property
    def memory(self) -> str:
        """'read' / 'write' when this move triggers a data-memory access, else ''."""
        return _memory_access(self.dst)

    @property
    def port(self) -> str:
        """The physical port written: all opcodes of a unit share its trigger port."""
        unit, _, name = self.dst.partition(".")
        spec = UNITS.get(unit)
        return f"{unit}.trigger" if spec and name in spec.opcodes else self.dst


@lru_cache(maxsize=None)
def _memory_access(dst: str) -> str:
    unit, _, name = dst.partition(".")
    spec = UNITS.get(unit)
    if not spec or name not in spec.opcodes:
        return ""
    op = op_spec(unit, name)
    return "read" if op.read or op.row_read or op.window_read else ("write" if op.write else "")


class Timeline:
    """A block of code being scheduled: chains of timed moves placed at the earliest cycle
    where buses, ports, memory banks and in-order units allow; `lines()` gives the
    instructions. Its length is the block's exact cycle count (the estimator's basis)."""

    def __init__(self, config: AccelConfig, start: int = 0):
        self.buses = config.buses
        self.moves: dict[int, list[str]] = defaultdict(list)
        self.ports: dict[int, set[str]] = defaultdict(set)
        self.memory: dict[int, set[tuple[str, str]]] = defaultdict(set)  # (unit, read/write)
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
            access = m.memory
            if access and any(a == access and u != unit for u, a in self.memory[c]):
                return False
        return True

    def place(self, chain: list[TimedMove], min_start: int = 0) -> int:
        """Place a chain at its earliest feasible start (not before `min_start`); returns it."""
        base = min(m.offset for m in chain)
        chain = [TimedMove(m.offset - base, m.src, m.dst) for m in chain]
        per_cycle: dict[int, list[str]] = defaultdict(list)
        for m in chain:
            per_cycle[m.offset].append(m.port)
        if any(len(p) > self.buses or len(set(p)) < len(p) for p in per_cycle.values()):
            raise ValueError(f"a chain that can never be placed on {self.buses} buses: {chain}")
        start = max(self.floor, self.last_start - WINDOW, min_start)
        while not self._fits(start, chain):
            start += 1
        for m in chain:
            c = start + m.offset
            self.moves[c].append(f"{m.src} -> {m.dst}")
            self.ports[c].add(m.port)
            unit = m.dst.split(".")[0]
            if m.memory:
                self.memory[c].add((unit, m.memory))
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
