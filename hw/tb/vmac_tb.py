"""cocotb testbench of the vector MAC unit (tta_vmac.sv) against a numpy model.

Runs inside the simulator; started by `hw.tb.runner.run_unit_bench`. The bench plays the data
memory: it answers the unit's row address with random rows, read as int8, ternary or binary
weights depending on the opcode.
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.tb.common import ResultPort, start
from hw.units import PRECISIONS, VMAC_OPS

OP = {name: i for i, name in enumerate(VMAC_OPS)}
MAC_OPS = {OP[acc]: (bits, False) for bits, acc, _ in PRECISIONS.values()}
MAC_OPS |= {OP[start]: (bits, True) for bits, _, start in PRECISIONS.values()}


def lane_weights(row: int, width: int, bits: int) -> np.ndarray:
    fields = np.array([(row >> (bits * l)) & ((1 << bits) - 1) for l in range(width // bits)])
    if bits == 8:
        return np.where(fields > 127, fields - 256, fields)
    if bits == 2:
        return (fields & 1) * (1 - 2 * (fields >> 1))
    return 2 * fields - 1


@cocotb.test()
async def vmac_random_operations(dut):
    width = int(dut.W.value)
    rng = random.Random(2026)
    rows = {r: rng.getrandbits(width) for r in range(256)}
    acc = np.zeros(width, np.int64)
    x_latched = 0
    await start(dut, (dut.x_we, dut.x_d, dut.trig, dut.trig_d, dut.op, dut.mem_rdata))
    res = ResultPort(int(dut.LAT.value))
    for cycle in range(400):
        x_we = rng.random() < 0.6
        x = rng.randint(-128, 127) & 0xFFFFFFFF
        trig = rng.random() < 0.8
        op = rng.choice(list(MAC_OPS) + [OP["get"]] * 3)
        value = rng.randrange(256) if op != OP["get"] else rng.randrange(1 << 16)
        dut.x_we.value, dut.x_d.value = int(x_we), x
        dut.trig.value, dut.trig_d.value, dut.op.value = int(trig), value, op
        dut.mem_rdata.value = rows[value % 256]

        # The model: an operand written with the trigger is used at once.
        xv = x if x_we else x_latched
        xs = (xv & 0xFF) - 256 if xv & 0x80 else xv & 0xFF
        if trig and op == OP["get"]:
            res.trigger(cycle, int(acc[value % width]))
        elif trig:
            bits, fresh = MAC_OPS[op]
            w = lane_weights(rows[value % 256], width, bits)
            n = len(w)
            acc[:n] = (0 if fresh else acc[:n]) + xs * w
            acc = ((acc + 2**31) % 2**32) - 2**31
        if x_we:
            x_latched = x

        await RisingEdge(dut.clk)
        await ReadOnly()
        res.check(dut, cycle)
        await FallingEdge(dut.clk)
