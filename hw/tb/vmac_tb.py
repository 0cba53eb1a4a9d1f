"""cocotb testbench of the vector MAC unit (tta_vmac.sv) against a numpy model.

Runs inside the simulator; started by `hw.tb.runner.run_unit_bench`. The bench plays the data
memory: it answers the unit's row address with random weight rows.
"""

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

OP_MAC, OP_MAC0, OP_GET = 0, 1, 2


@cocotb.test()
async def vmac_random_operations(dut):
    width, latency = int(dut.W.value), int(dut.LAT.value)
    lanes = width // 8
    rng = random.Random(2026)
    rows = {r: np.array([rng.randint(-128, 127) for _ in range(lanes)], np.int64)
            for r in range(256)}
    acc = np.zeros(lanes, np.int64)
    x_latched = 0
    pending = []  # (cycle the result appears, expected value)
    last_result = 0

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for sig in (dut.x_we, dut.x_d, dut.trig, dut.trig_d, dut.op, dut.mem_rdata):
        sig.value = 0
    dut.en.value = 1
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    checked = 0
    for cycle in range(400):
        x_we = rng.random() < 0.6
        x = rng.randint(-128, 127) & 0xFFFFFFFF
        trig = rng.random() < 0.8
        op = rng.choice([OP_MAC, OP_MAC, OP_MAC0, OP_GET])
        value = rng.randrange(256) if op != OP_GET else rng.randrange(1 << 16)
        dut.x_we.value, dut.x_d.value = int(x_we), x
        dut.trig.value, dut.trig_d.value, dut.op.value = int(trig), value, op
        row = rows[value % 256]
        dut.mem_rdata.value = int.from_bytes(row.astype(np.int8).tobytes(), "little")

        # The model: an operand written with the trigger is used at once.
        xv = x if x_we else x_latched
        xs = (xv & 0xFF) - 256 if xv & 0x80 else xv & 0xFF
        if trig and op == OP_GET:
            pending.append((cycle + latency, int(acc[value % lanes]) & 0xFFFFFFFF))
        elif trig:
            acc = (0 if op == OP_MAC0 else acc) + xs * row
            acc = ((acc + 2**31) % 2**32) - 2**31
        if x_we:
            x_latched = x

        await RisingEdge(dut.clk)
        await ReadOnly()
        while pending and pending[0][0] <= cycle + 1:
            last_result = pending.pop(0)[1]
        got = int(dut.res.value)
        assert got == last_result, f"cycle {cycle}: res {got:#x}, expected {last_result:#x}"
        checked += 1
        await FallingEdge(dut.clk)
    assert checked == 400
