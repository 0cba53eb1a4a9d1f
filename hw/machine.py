"""The seam between programs and the engines that run them (golden model, RTL in Verilator).

Both engines expose the same small interface, so a test or the compiler's runtime can run a
program on either and compare final states.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from hw.asm import Program
from hw.config import AccelConfig
from hw.errors import SimulationError
from hw.isa import Encoding, counter_names


@dataclass(frozen=True)
class RunResult:
    cycles: int  # cycles of this run, the halting instruction included
    counters: dict[str, int]  # event counters since the last reset


@dataclass(frozen=True)
class MachineState:
    pc: int
    halted: bool
    regs: tuple[int, ...]  # unsigned 32-bit values
    bools: tuple[int, ...]
    counters: dict[str, int]


class Machine(ABC):
    """One accelerator instance: memories, architectural state and counters."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.encoding = Encoding(config)
        self.counter_names = counter_names(config)

    @abstractmethod
    def reset(self) -> None:
        """Clear pc, registers, unit state and counters; memories keep their contents."""

    @abstractmethod
    def load_program(self, program: Program, base: int = 0) -> None:
        """Write a program's instructions to the instruction memory from address `base`."""

    @abstractmethod
    def write_dmem(self, addr: int, data: bytes | np.ndarray) -> None:
        """Write bytes to the data memory at byte address `addr`."""

    @abstractmethod
    def read_dmem(self, addr: int, n: int) -> np.ndarray:
        """Read `n` bytes (uint8) from the data memory at byte address `addr`."""

    @abstractmethod
    def write_offchip(self, addr: int, data: bytes | np.ndarray) -> None:
        """Write bytes to the off-chip memory (the DMA unit's) at byte address `addr`."""

    @abstractmethod
    def read_offchip(self, addr: int, n: int) -> np.ndarray:
        """Read `n` bytes (uint8) of the off-chip memory at byte address `addr`."""

    @abstractmethod
    def set_pc(self, pc: int) -> None:
        """Start the next run at instruction `pc` (after a reset)."""

    @abstractmethod
    def _run(self, max_cycles: int) -> int | None:
        """Run until halt; cycles run, or None when `max_cycles` passed without a halt."""

    @abstractmethod
    def state(self) -> MachineState: ...

    def run(self, max_cycles: int = 10_000_000) -> RunResult:
        cycles = self._run(max_cycles)
        if cycles is None:
            raise SimulationError(f"program did not halt within {max_cycles} cycles "
                                  f"(pc={self.state().pc}); raise the cycle limit or fix the "
                                  f"program")
        return RunResult(cycles, self.state().counters)

    def advance(self, cycles: int) -> MachineState:
        """Run exactly `cycles` cycles and pause (the next run goes on from there); the state
        then. A halt before that is an error: the caller expected the program to go on."""
        ran = self._run(cycles)
        if ran is not None:
            raise SimulationError(f"the program halted after {ran} of {cycles} cycles "
                                  f"(pc={self.state().pc})")
        return self.state()

    def _check_dmem_range(self, addr: int, n: int) -> None:
        if addr < 0 or addr + n > self.config.dmem_bytes:
            raise SimulationError(f"data memory access [{addr}, {addr + n}) is outside "
                                  f"0..{self.config.dmem_bytes}")


    def _check_offchip_range(self, addr: int, n: int) -> None:
        if addr < 0 or addr + n > self.config.offchip.bytes:
            raise SimulationError(f"off-chip memory access [{addr}, {addr + n}) is outside "
                                  f"0..{self.config.offchip.bytes}")


def get_machine(name: str, config: AccelConfig) -> Machine:
    """An engine by name: 'golden' (Python instruction-level model), 'rtl' (Verilator) or
    'rtl-fault' (its fault-injection build, with the stuck-at port)."""
    if name == "golden":
        from hw.golden import GoldenModel
        return GoldenModel(config)
    if name in ("rtl", "rtl-fault"):
        from hw.sim import RtlSimulator
        return RtlSimulator(config, fault_port=name == "rtl-fault")
    raise SimulationError(f"unknown engine {name!r}; allowed: golden, rtl, rtl-fault")
