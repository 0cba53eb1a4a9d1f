"""cocotb testbench of the DMA unit (tta_dma.sv) against the golden model's `DmaUnit`.

Runs inside the simulator; started by `hw.tb.runner.run_unit_bench`. The bench plays the core
(stall cycles in which the unit runs on but takes no trigger; no load or store while busy), the
data memory and the off-chip memory, and checks every cycle's row access and `busy`.
"""

import random
from types import SimpleNamespace

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from hw.config import OffchipConfig
from hw.golden import DmaUnit
from hw.tb.common import start
from hw.units import UNITS

DMA_OPS = UNITS["dma"].opcodes


@cocotb.test()
async def dma_random_transfers(dut):
    width, row_aw = int(dut.W.value), int(dut.ROW_AW.value)
    latency, cpr = int(dut.LATENCY.value), int(dut.CPR.value)
    rows = 1 << row_aw
    config = SimpleNamespace(dmem_rows=rows, vector_width=width,
                             offchip=OffchipConfig(bits_per_cycle=width // cpr,
                                                   latency_cycles=latency))
    model = DmaUnit(config)
    rng = random.Random(5)
    inputs = [dut.ext_we_op, dut.ext_d, dut.shape_we, dut.shape_d, dut.trig, dut.trig_d, dut.op,
              dut.run, dut.mem_rdata, dut.ext_rdata]
    await start(dut, inputs)
    ext = shape = 0
    accesses = 0
    for cycle in range(3000):
        go = rng.random() < 0.8  # else a stall cycle: the unit runs, the core waits
        ext_we, shape_we = rng.random() < 0.3, rng.random() < 0.3
        e = rng.getrandbits(32)
        s = rng.randrange(0, 12) | (rng.choice([0, 0, 5, width // 8, rng.getrandbits(16)]) << 12)
        op = rng.randrange(len(DMA_OPS))
        trig = go and rng.random() < 0.3 and (DMA_OPS[op] == "wait" or not model.busy(cycle))
        dut.run.value, dut.en.value = 1, int(go)
        dut.ext_we_op.value, dut.ext_d.value = int(ext_we and go), e
        dut.shape_we.value, dut.shape_d.value = int(shape_we and go), s
        dut.trig.value, dut.trig_d.value, dut.op.value = int(trig), rng.getrandbits(32), op
        dut.mem_rdata.value = rng.getrandbits(width)
        dut.ext_rdata.value = rng.getrandbits(width)
        await Timer(1, unit="ns")
        assert int(dut.busy.value) == int(model.busy(cycle)), f"cycle {cycle}: busy"
        access = model.access(cycle)
        kind = access[0] if access else None
        assert int(dut.mem_we.value) == int(kind == "write"), f"cycle {cycle}: row write"
        assert int(dut.mem_re.value) == int(kind == "read"), f"cycle {cycle}: row read"
        if access:
            accesses += 1
            assert int(dut.mem_row.value) == access[1], f"cycle {cycle}: row"
            assert int(dut.ext_addr.value) == access[2] & 0xFFFFFFFF, f"cycle {cycle}: address"
            if kind == "write":
                assert int(dut.mem_wdata.value) == int(dut.ext_rdata.value)
            else:
                assert int(dut.ext_wdata.value) == int(dut.mem_rdata.value)
        if go and ext_we:
            ext = e
        if go and shape_we:
            shape = s
        if trig and DMA_OPS[op] != "wait":
            model.start(DMA_OPS[op], int(dut.trig_d.value), ext, shape, cycle)
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
    assert accesses > 200
