"""cocotb testbench of the scalar ALU (tta_alu.sv) against the golden model's `alu`."""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.golden import alu
from hw.units import ALU_OPS

EDGES = [0, 1, 2, 31, 32, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE]


@cocotb.test()
async def alu_random_operations(dut):
    latency = int(dut.LAT.value)
    rng = random.Random(7)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for sig in (dut.in1_we, dut.in1_d, dut.trig, dut.trig_d, dut.op):
        sig.value = 0
    dut.en.value = 1
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    in1, pending, expected = 0, [], 0
    word = lambda: rng.choice(EDGES) if rng.random() < 0.3 else rng.getrandbits(32)  # noqa: E731
    for cycle in range(2000):
        in1_we, trig = rng.random() < 0.7, rng.random() < 0.8
        a, b, op = word(), word(), rng.randrange(len(ALU_OPS))
        dut.in1_we.value, dut.in1_d.value = int(in1_we), a
        dut.trig.value, dut.trig_d.value, dut.op.value = int(trig), b, op
        if in1_we:
            in1 = a
        if trig:
            pending.append((cycle + latency, alu(ALU_OPS[op], in1, b)))
        await RisingEdge(dut.clk)
        await ReadOnly()
        while pending and pending[0][0] <= cycle + 1:
            expected = pending.pop(0)[1]
        assert int(dut.res.value) == expected, f"cycle {cycle}: {int(dut.res.value):#x} != {expected:#x}"
        await FallingEdge(dut.clk)
