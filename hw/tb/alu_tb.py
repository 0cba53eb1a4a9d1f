"""cocotb testbench of the scalar ALU (tta_alu.sv) against the golden model's `alu`."""

import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.golden import alu
from hw.tb.common import ResultPort, start
from hw.units import UNITS

ALU_OPS = UNITS["alu"].opcodes

EDGES = [0, 1, 2, 31, 32, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE]


@cocotb.test()
async def alu_random_operations(dut):
    rng = random.Random(7)
    await start(dut, (dut.in1_we, dut.in1_d, dut.trig, dut.trig_d, dut.op))
    res, in1 = ResultPort(int(dut.LAT.value)), 0
    word = lambda: rng.choice(EDGES) if rng.random() < 0.3 else rng.getrandbits(32)  # noqa: E731
    for cycle in range(2000):
        in1_we, trig = rng.random() < 0.7, rng.random() < 0.8
        a, b, op = word(), word(), rng.randrange(len(ALU_OPS))
        dut.in1_we.value, dut.in1_d.value = int(in1_we), a
        dut.trig.value, dut.trig_d.value, dut.op.value = int(trig), b, op
        if in1_we:
            in1 = a
        if trig:
            res.trigger(cycle, alu(ALU_OPS[op], in1, b))
        await RisingEdge(dut.clk)
        await ReadOnly()
        res.check(dut, cycle)
        await FallingEdge(dut.clk)
