"""cocotb testbench of the load-store unit (tta_lsu.sv); the bench plays the data memory."""

import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer

from hw.tb.common import ResultPort, start
from hw.units import UNITS

LSU_OPS = UNITS["lsu"].opcodes

OP = {name: i for i, name in enumerate(LSU_OPS)}


@cocotb.test()
async def lsu_random_accesses(dut):
    width, latency, row_aw = int(dut.W.value), int(dut.LAT.value), int(dut.ROW_AW.value)
    row_bytes, rows = width // 8, 1 << row_aw
    size = rows * row_bytes
    rng = random.Random(11)
    mem = bytearray(rng.getrandbits(8) for _ in range(size))
    await start(dut, (dut.data_we, dut.data_d, dut.base_we, dut.base_d, dut.trig, dut.trig_d,
                      dut.op, dut.mem_rdata))
    res, data, base = ResultPort(latency), 0, 0
    for cycle in range(2000):
        data_we, base_we, trig = rng.random() < 0.5, rng.random() < 0.3, rng.random() < 0.8
        d, offset, op = rng.getrandbits(32), rng.getrandbits(32), rng.randrange(len(LSU_OPS))
        b = rng.getrandbits(32)
        if base_we:  # a base moved with the trigger is used by it
            base = b
        addr = (base + offset) & 0xFFFFFFFF
        dut.data_we.value, dut.data_d.value = int(data_we), d
        dut.base_we.value, dut.base_d.value = int(base_we), b
        dut.trig.value, dut.trig_d.value, dut.op.value = int(trig), offset, op
        await Timer(1, unit="ns")
        row = int(dut.mem_row.value)
        assert row == (addr % size) // row_bytes
        dut.mem_rdata.value = int.from_bytes(mem[row * row_bytes:(row + 1) * row_bytes], "little")
        await Timer(1, unit="ns")
        if data_we:
            data = d
        a = addr % size
        name = LSU_OPS[op]
        if trig and name in ("ldw", "stw"):
            a &= ~3
        if trig and name.startswith("ld"):
            value = int.from_bytes(mem[a:a + (4 if name == "ldw" else 1)], "little")
            if name == "ldb" and value > 127:
                value = (value - 256) & 0xFFFFFFFF
            res.trigger(cycle, value)
        store = trig and name.startswith("st")
        assert int(dut.mem_we.value) == int(store)
        if store:
            n = 4 if name == "stw" else 1
            wdata, wmask = int(dut.mem_wdata.value), int(dut.mem_wmask.value)
            shift = 8 * (a % row_bytes)
            assert wmask == ((1 << (8 * n)) - 1) << shift
            assert (wdata >> shift) & ((1 << (8 * n)) - 1) == data & ((1 << (8 * n)) - 1)
            mem[a:a + n] = (data & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
        await RisingEdge(dut.clk)
        await ReadOnly()
        res.check(dut, cycle)
        await FallingEdge(dut.clk)
