"""cocotb testbench of the vector unit (tta_vmac.sv) against the golden model's `VectorUnit`.

Runs inside the simulator; started by `hw.tb.runner.run_unit_bench`. The bench plays the data
memory: it answers the unit's row address and its window's two rows with random rows, and checks
and applies its writes.
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer

from hw.golden import VectorUnit
from hw.tb.common import ResultPort, start
from hw.units import UNITS

VMAC_OPS = UNITS["vmac"].opcodes

OPERANDS = ("x", "xb", "base", "prm", "cfg", "vg", "wb", "ab")


@cocotb.test()
async def vector_unit_random_operations(dut):
    width, row_aw = int(dut.W.value), int(dut.ROW_AW.value)
    rows, row_bytes = 1 << row_aw, width // 8
    rng = random.Random(2026)
    memory = np.frombuffer(rng.randbytes(rows * row_bytes), np.uint8).copy()
    model = VectorUnit(width, rows)
    latched = dict.fromkeys(OPERANDS, 0)
    inputs = [dut.trig, dut.trig_d, dut.op, dut.mem_rdata, dut.win_rdata]
    inputs += [getattr(dut, f"{o}_{s}") for o in OPERANDS for s in ("we", "d")]
    await start(dut, inputs)
    res = ResultPort(int(dut.LAT.value))
    writes = 0
    for cycle in range(1500):
        ops = dict(latched)
        for o in OPERANDS:
            we = rng.random() < 0.3
            value = rng.choice([rng.getrandbits(32), rng.randrange(-200, 200) & 0xFFFFFFFF])
            if o == "cfg" and rng.random() < 0.7:  # mostly lo < hi, sometimes bypass,
                #                                       each rounding mode
                value = (rng.randrange(-128, 0) & 0xFF) | rng.randrange(0, 128) << 8 \
                    | (rng.random() < 0.2) << 16 | rng.randrange(3) << 19
            if o == "vg" and rng.random() < 0.7:  # mostly small groups and steps
                value = rng.randrange(0, 12) << 8 | rng.randrange(0, 40)
            getattr(dut, f"{o}_we").value, getattr(dut, f"{o}_d").value = int(we), value
            if we:
                ops[o] = latched[o] = value  # an operand moved with the trigger is used at once
        trig = rng.random() < 0.8
        op = rng.randrange(len(VMAC_OPS))
        value = rng.getrandbits(32)
        dut.trig.value, dut.trig_d.value, dut.op.value = int(trig), value, op
        await Timer(1, unit="ns")
        def row_bytes_of(r):
            r %= rows
            return memory[r * row_bytes:(r + 1) * row_bytes]

        row, win = int(dut.mem_row.value), int(dut.win_row.value)
        dut.mem_rdata.value = int.from_bytes(row_bytes_of(row), "little")
        dut.win_rdata.value = int.from_bytes(
            np.concatenate([row_bytes_of(win), row_bytes_of(win + 1)]), "little")
        await Timer(1, unit="ns")

        write = None
        if trig:
            result, write = model.execute(VMAC_OPS[op], value, ops, row_bytes_of)
            if result is not None:
                res.trigger(cycle, result)
        assert int(dut.mem_we.value) == int(write is not None), f"cycle {cycle}: write enable"
        if write is not None:
            wrow, offset, data, bits = write
            mask = int.from_bytes(np.broadcast_to(bits, data.shape).astype(np.uint8).tobytes(),
                                  "little") << (8 * offset)
            want = (int.from_bytes(data.tobytes(), "little") << (8 * offset)) & mask
            assert int(dut.mem_wrow.value) == wrow, f"cycle {cycle}: write row"
            assert int(dut.mem_wmask.value) == mask, f"cycle {cycle}: write mask"
            assert int(dut.mem_wdata.value) & mask == want, f"cycle {cycle}: {VMAC_OPS[op]} data"
            start_byte = wrow * row_bytes + offset
            old = memory[start_byte:start_byte + len(data)]
            memory[start_byte:start_byte + len(data)] = (old & ~bits) | (data & bits)
            writes += 1
        await RisingEdge(dut.clk)
        await ReadOnly()
        res.check(dut, cycle)
        await FallingEdge(dut.clk)
    assert writes > 100
