"""Pieces every unit bench shares: clock and reset, and the model of a unit's result port."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge


async def start(dut, inputs) -> None:
    """Start the clock, zero the inputs, pulse reset; returns at a falling edge."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for sig in inputs:
        sig.value = 0
    dut.en.value = 1
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


class ResultPort:
    """Expected value of a result port: a result triggered in cycle t shows from t + latency on."""

    def __init__(self, latency: int):
        self.latency, self.pending, self.value = latency, [], 0

    def trigger(self, cycle: int, value: int) -> None:
        self.pending.append((cycle + self.latency, value & 0xFFFFFFFF))

    def check(self, dut, cycle: int) -> None:
        """Call after the clock edge that ends `cycle`."""
        while self.pending and self.pending[0][0] <= cycle + 1:
            self.value = self.pending.pop(0)[1]
        got = int(dut.res.value)
        assert got == self.value, f"cycle {cycle}: res {got:#x}, expected {self.value:#x}"
