"""The registry of function units: one place that names each unit's ports and operations.

The instruction encoding (`hw.isa`), the RTL parameter header (`hw.build`), the golden model
(`hw.golden`) and the energy model are all derived from this table, so adding a unit starts here.
Opcodes are numbered in the order listed; the RTL reads the same numbers from the generated header.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UnitSpec:
    name: str
    operands: tuple[str, ...]  # operand ports: latched, used by the next trigger
    opcodes: tuple[str, ...]  # writing `unit.<opcode>` writes the trigger port and starts the op
    results: tuple[str, ...]  # result ports readable as move sources
    default_latency: int
    rtl: str | None  # SystemVerilog file under hw/rtl/, None when built into the core
    doc: str


ALU_OPS = ("add", "sub", "and", "or", "xor", "shl", "shr", "sra",
           "mul", "mulhi", "mulhr", "eq", "ne", "lt", "ltu", "min", "max")
LSU_OPS = ("ldw", "ldb", "ldbu", "stw", "stb")
VMAC_OPS = ("mac", "mac0", "tmac", "tmac0", "bmac", "bmac0",
            "dmac", "dmac0", "dtmac", "dtmac0", "dbmac", "dbmac0", "get",
            # post-processing of the accumulators (see hw/ISA.md)
            "sbias", "smul", "sshift", "brep", "rq", "bin", "ter", "aset", "radd", "amax")
# Post-processing operations that touch a group of W/8 accumulator lanes.
VPP_GROUP_OPS = ("rq", "bin", "ter", "aset", "radd", "amax")

# Precisions of the vector MAC on one W-bit datapath: weight bits per lane, and the opcodes that
# accumulate (`mac`) or start a new sum (`mac0`). Lanes = W / bits: peak MACs 8 : 4 : 1.
PRECISIONS = {  # name -> (weight bits, accumulate opcode, start opcode)
    "int8": (8, "mac", "mac0"),
    "ternary": (2, "tmac", "tmac0"),
    "binary": (1, "bmac", "bmac0"),
}
# Dot-product forms of the same precisions: `x` holds 32 bits of packed activations (4 int8,
# 16 ternary codes or 32 bits) and each of the W/32 output lanes reduces them against its own
# 32-bit slice of the weight row, so the reduction runs over input channels and every precision
# reaches its peak with only W/32 output channels.
DOT_PRECISIONS = {  # name -> (accumulate opcode, start opcode)
    "int8": ("dmac", "dmac0"),
    "ternary": ("dtmac", "dtmac0"),
    "binary": ("dbmac", "dbmac0"),
}
CTRL_OPS = ("jump", "halt")

UNITS: dict[str, UnitSpec] = {
    spec.name: spec
    for spec in (
        UnitSpec("ctrl", (), CTRL_OPS, (), 1, None,
                 "control: jump to the trigger value, or halt; always present"),
        UnitSpec("alu", ("in1",), ALU_OPS, ("res",), 1, "tta_alu.sv",
                 "scalar 32-bit ALU: res = in1 <op> trigger (mulhi: high word of the signed product, "
                 "mulhr: the same rounded half up)"),
        UnitSpec("lsu", ("data", "base"), LSU_OPS, ("res",), 1, "tta_lsu.sv",
                 "scalar load-store unit on the data memory; byte address = base + trigger"),
        UnitSpec("vmac", ("x", "base", "prm", "cfg"), VMAC_OPS, ("res",), 1, "tta_vmac.sv",
                 "vector MAC: W/8 int8, W/2 ternary or W binary lanes with int32 "
                 "accumulators; x broadcast to all lanes, or (dot forms) 32 bits of packed "
                 "activations reduced per W/32 output lanes; trigger = weight row; and "
                 "post-processing of W/8 accumulators at a time: per-channel requantization, "
                 "binarization, ternarization, residual add and max"),
    )
}

# Units a config may list; ctrl is always there.
OPTIONAL_UNITS = tuple(name for name in UNITS if name != "ctrl")
