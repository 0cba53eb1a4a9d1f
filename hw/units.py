"""The registry of function units and the table of their operations: the one place that states
each unit's ports and each operation's facts (which memory it reads and writes, what it counts).

The instruction encoding (`hw.isa`), the RTL opcode header (`hw.build`), the golden model
(`hw.golden`), the estimator's per-instruction events (`compiler.estimate`) and the energy model
all read these tables, so adding an operation or a unit starts here. Opcodes are numbered in the
order listed; the RTL reads the same numbers from the generated header.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpSpec:
    """What one operation does besides computing: its data-memory traffic and event counts."""

    name: str
    row_read: bool = False  # reads row[trigger value] through the unit's row port (W bits)
    window_read: bool = False  # reads the activation window at word address xb + x (W bits)
    write: str = ""  # "row": W bits at row[trigger]; "bits": W/8 bits, "codes": W/4 bits at a
    #                  byte address; "lanes": the W/32 bytes of one block of a row; "word" /
    #                  "byte": the LSU's 32 / 8 bits
    read: int = 0  # bits the LSU loads
    mac_bits: int = 0  # a vector MAC at this weight precision (counts vmac_mac<bits>)
    group: bool = False  # post-processing of a group of accumulator lanes (counts vpp_groups)

    def write_bits(self, width: int) -> int:
        return {"": 0, "row": width, "bits": width // 8, "codes": width // 4,
                "lanes": width // 4, "word": 32, "byte": 8}[self.write]

    def events(self, width: int) -> dict[str, int]:
        """Counter increments of one trigger on a W = `width` datapath (besides trig_<unit>)."""
        ev: dict[str, int] = {}
        read = self.read + width * (self.row_read + self.window_read)
        if read:
            ev["dmem_read_bits"] = read
        if self.write:
            ev["dmem_write_bits"] = self.write_bits(width)
        if self.mac_bits:
            ev[f"vmac_mac{self.mac_bits}"] = 1
        if self.group:
            ev["vpp_groups"] = 1
        return ev


@dataclass(frozen=True)
class UnitSpec:
    name: str
    operands: tuple[str, ...]  # operand ports: latched, used by the next trigger
    ops: tuple[OpSpec, ...]  # writing `unit.<op>` writes the trigger port and starts the op
    results: tuple[str, ...]  # result ports readable as move sources
    default_latency: int

    @property
    def opcodes(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops)

    def op(self, name: str) -> OpSpec:
        return self.ops[self.opcodes.index(name)]


# Precisions of the vector MAC on one W-bit datapath: weight bits per lane, and the opcodes that
# accumulate or start a new sum, in three forms:
# - broadcast: the low byte of x times every lane's weight (W/bits lanes);
# - dot: each of the W/32 output lanes reduces one 32-bit word of the activation window against
#   its own 32-bit slice of the weight row, so W/32 output channels reach the peak;
# - element-wise: lane l multiplies element l of the weight row by an element of the window
#   (W/bits lanes: depthwise convolutions, channels across lanes).
PRECISIONS = {  # name -> (weight bits, accumulate opcode, start opcode): the broadcast form
    "int8": (8, "mac", "mac0"),
    "ternary": (2, "tmac", "tmac0"),
    "binary": (1, "bmac", "bmac0"),
}
DOT_PRECISIONS = {  # name -> (accumulate opcode, start opcode)
    "int8": ("dmac", "dmac0"),
    "ternary": ("dtmac", "dtmac0"),
    "binary": ("dbmac", "dbmac0"),
}
EW_PRECISIONS = {  # name -> (accumulate opcode, start opcode)
    "int8": ("emac", "emac0"),
    "ternary": ("etmac", "etmac0"),
    "binary": ("ebmac", "ebmac0"),
}
BITS = {name: bits for name, (bits, *_) in PRECISIONS.items()}


def _macs(table: dict, window: bool) -> tuple[OpSpec, ...]:
    return tuple(OpSpec(op, row_read=True, window_read=window, mac_bits=BITS[p])
                 for p, ops in table.items() for op in ops[-2:])


ALU_OPS = ("add", "sub", "and", "or", "xor", "shl", "shr", "sra",
           "mul", "mulhi", "mulhr", "eq", "ne", "lt", "ltu", "min", "max")
LSU_OPS = (OpSpec("ldw", read=32), OpSpec("ldb", read=8), OpSpec("ldbu", read=8),
           OpSpec("stw", write="word"), OpSpec("stb", write="byte"))
VMAC_OPS = (
    *_macs(PRECISIONS, False), *_macs(DOT_PRECISIONS, True), *_macs(EW_PRECISIONS, True),
    OpSpec("get"),
    # post-processing of the accumulators (see hw/ISA.md)
    OpSpec("sbias"), OpSpec("smul"), OpSpec("sshift"),
    OpSpec("lbias", row_read=True), OpSpec("lmul", row_read=True), OpSpec("lshift", row_read=True),
    OpSpec("rq", write="row", group=True), OpSpec("racc", write="row", group=True),
    OpSpec("bin", write="bits", group=True), OpSpec("ter", write="codes", group=True),
    OpSpec("aset", row_read=True, group=True), OpSpec("radd", row_read=True, group=True),
    OpSpec("amax", row_read=True, group=True),
    OpSpec("rsc0", row_read=True, group=True), OpSpec("rsc", row_read=True, group=True),
    # a 256-entry byte table: llut loads part of it from a row; lut maps W/32 bytes of a row
    # through it (element-wise activations: one table per function and scales)
    OpSpec("llut", row_read=True), OpSpec("lut", row_read=True, write="lanes", group=True),
)
CTRL_OPS = ("jump", "halt")
# The DMA unit moves whole data-memory rows to and from the off-chip memory in the background;
# its traffic is counted per row as it happens (hw/ISA.md), not per trigger.
DMA_OPS = ("load", "store", "wait")

UNITS: dict[str, UnitSpec] = {
    spec.name: spec
    for spec in (
        # control: jump to the trigger value, or halt; always present
        UnitSpec("ctrl", (), tuple(OpSpec(op) for op in CTRL_OPS), (), 1),
        # scalar 32-bit ALU: res = in1 <op> trigger
        UnitSpec("alu", ("in1",), tuple(OpSpec(op) for op in ALU_OPS), ("res",), 1),
        # scalar load-store unit on the data memory; byte address = base + trigger
        UnitSpec("lsu", ("data", "base"), LSU_OPS, ("res",), 1),
        # vector unit: MACs in three forms and post-processing of W int32 accumulators
        # (wb: added to every row the row port reads; ab: added to base)
        UnitSpec("vmac", ("x", "xb", "base", "prm", "cfg", "vg", "wb", "ab"), VMAC_OPS,
                 ("res",), 1),
        # DMA: `shape` rows between the data memory (trigger = first row) and off-chip bytes
        # from `ext`; wait stalls until it is idle
        UnitSpec("dma", ("ext", "shape"), tuple(OpSpec(op) for op in DMA_OPS), (), 1),
    )
}

# Units a config may list; ctrl is always there.
OPTIONAL_UNITS = tuple(name for name in UNITS if name != "ctrl")


def op_spec(unit: str, op: str) -> OpSpec:
    return UNITS[unit].op(op)
