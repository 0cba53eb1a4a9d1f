"""The golden instruction-level model: the living definition of the instruction set.

Every cycle executes one instruction. Its moves read their sources as they stand at the start of
the cycle (guards too) and write their destinations at its end; when several moves in one cycle
write one port, the highest slot wins. A trigger uses operand values written in the same cycle.
A unit's result appears on its result port `latency` cycles after the trigger and stays until
the next result. Loads and vector reads see memory at the start of the cycle; stores land at its
end. Out-of-range addresses wrap (memory sizes are powers of two).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from hw.asm import Program
from hw.config import AccelConfig
from hw.machine import Machine, MachineState
from hw.units import ALU_OPS, DOT_PRECISIONS, PRECISIONS, UNITS, VMAC_OPS

VPP_OPS = VMAC_OPS[VMAC_OPS.index("sbias"):]
# Vector-unit operations that read a data-memory row (the MACs' weights, the row operations).
VECTOR_READS = tuple(op for ops in (*(p[1:] for p in PRECISIONS.values()),
                                    *DOT_PRECISIONS.values()) for op in ops) \
    + ("aset", "radd", "amax")

M32 = 0xFFFFFFFF


def s32(x: int) -> int:
    x &= M32
    return x - (1 << 32) if x >> 31 else x


def alu(op: str, a: int, b: int) -> int:
    """Scalar ALU: unsigned 32-bit in, unsigned 32-bit out."""
    sa, sb, sh = s32(a), s32(b), b & 31
    return {
        "add": lambda: a + b,
        "sub": lambda: a - b,
        "and": lambda: a & b,
        "or": lambda: a | b,
        "xor": lambda: a ^ b,
        "shl": lambda: a << sh,
        "shr": lambda: a >> sh,
        "sra": lambda: sa >> sh,
        "mul": lambda: sa * sb,
        "mulhi": lambda: (sa * sb) >> 32,
        "mulhr": lambda: (sa * sb + (1 << 31)) >> 32,
        "eq": lambda: int(a == b),
        "ne": lambda: int(a != b),
        "lt": lambda: int(sa < sb),
        "ltu": lambda: int(a < b),
        "min": lambda: min(sa, sb),
        "max": lambda: max(sa, sb),
    }[op]() & M32


class _Unit:
    def __init__(self, name: str, latency: int):
        self.name, self.latency = name, latency
        self.spec = UNITS[name]
        self.operands = {p: 0 for p in self.spec.operands}
        self.result = 0
        self.pipe: deque[tuple[int, int]] = deque()

    def deliver(self, cycle: int) -> None:
        while self.pipe and self.pipe[0][0] <= cycle:
            self.result = self.pipe.popleft()[1]


class GoldenModel(Machine):
    def __init__(self, config: AccelConfig):
        super().__init__(config)
        enc = self.encoding
        self.imem = [0] * config.imem_depth
        self.dmem = np.zeros(config.dmem_bytes, dtype=np.uint8)
        # What each destination id writes: ("reg", i) | ("bool", i) | ("operand", unit, port)
        # | ("trigger", unit, opcode).
        self._dst_kind: list[tuple] = [("none",)]
        for name in enc.dests[1:]:
            if name[0] in "rb" and name[1:].isdigit():
                self._dst_kind.append(("reg" if name[0] == "r" else "bool", int(name[1:])))
            else:
                unit, port = name.split(".")
                kind = "trigger" if port in UNITS[unit].opcodes else "operand"
                self._dst_kind.append((kind, unit, port))
        # Result-port sources by id (after registers and guard registers): the unit they read.
        self._src_unit = {i: n.split(".")[0] for i, n in enumerate(enc.sources) if "." in n}
        self._decoded: dict[int, list] = {}
        self.reset()

    # --- Machine interface ------------------------------------------------------------------
    def reset(self) -> None:
        c = self.config
        self.pc, self.halted, self.cycle = 0, False, 0
        self.tick = 0  # instructions executed: unit latencies count these, not stall cycles
        self.regs = [0] * c.registers
        self.bools = [0] * c.bool_registers
        self.units = {n: _Unit(n, c.latency(n)) for n in c.unit_names}
        self.vector = VectorUnit(c.vector_width, c.dmem_rows)
        self.counters = dict.fromkeys(self.counter_names, 0)

    def load_program(self, program: Program, base: int = 0) -> None:
        for i, w in enumerate(program.words):
            self.imem[base + i] = w
        self._decoded.clear()

    def write_dmem(self, addr: int, data) -> None:
        data = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) \
            else data.astype(np.uint8).ravel()
        self._check_dmem_range(addr, len(data))
        self.dmem[addr:addr + len(data)] = data

    def read_dmem(self, addr: int, n: int) -> np.ndarray:
        self._check_dmem_range(addr, n)
        return self.dmem[addr:addr + n].copy()

    def set_pc(self, pc: int) -> None:
        self.pc = pc % self.config.imem_depth

    def state(self) -> MachineState:
        return MachineState(self.pc, self.halted, tuple(self.regs), tuple(self.bools),
                            dict(self.counters))

    def _run(self, max_cycles: int) -> int | None:
        start = self.cycle
        while not self.halted:
            if self.cycle - start >= max_cycles:
                return None
            self.step()
        return self.cycle - start

    # --- execution --------------------------------------------------------------------------
    def _decode(self, pc: int) -> list:
        if pc not in self._decoded:
            enc = self.encoding
            self._decoded[pc] = [(slot, m.guard, m.src, m.dst)
                                 for slot, m in enumerate(enc.decode(self.imem[pc]).moves) if m.dst]
        return self._decoded[pc]

    def _source(self, src: int) -> int:
        enc, c = self.encoding, self.config
        if enc.is_imm(src):
            return enc.imm_value(src) & M32
        if src < c.registers:
            self.counters["rf_reads"] += 1
            return self.regs[src]
        if src < c.registers + c.bool_registers:
            return self.bools[src - c.registers]
        unit = self._src_unit.get(src)
        return self.units[unit].result if unit else 0

    def _guard(self, g: int) -> bool:
        if g == 0:
            return True
        k, neg = divmod(g - 1, 2)
        value = self.bools[k] if k < self.config.bool_registers else 0
        return bool(value) != bool(neg)

    def step(self) -> None:
        c, cnt, cycle = self.config, self.counters, self.tick
        for u in self.units.values():
            u.deliver(cycle)
        reg_w: dict[int, int] = {}
        bool_w: dict[int, int] = {}
        operand_w: dict[tuple[str, str], int] = {}
        triggers: dict[str, tuple[str, int]] = {}
        for slot, g, src, dst in self._decode(self.pc):
            if not self._guard(g):
                continue
            value = self._source(src)
            cnt[f"moves_bus{slot}"] += 1
            kind = self._dst_kind[dst] if dst < len(self._dst_kind) else ("none",)
            if kind[0] == "reg":
                reg_w[kind[1]] = value
                cnt["rf_writes"] += 1
            elif kind[0] == "bool":
                bool_w[kind[1]] = value & 1
            elif kind[0] == "operand":
                operand_w[(kind[1], kind[2])] = value
            elif kind[0] == "trigger":
                triggers[kind[1]] = (kind[2], value)

        if c.dmem_banks > 1 and self._bank_conflict(triggers, operand_w):
            cnt["cycles"] += 1  # the core waits a cycle, then executes the instruction
            cnt["stall_cycles"] += 1
            self.cycle += 1
        next_pc = (self.pc + 1) % c.imem_depth
        store = vstore = None
        for unit, (op, value) in triggers.items():
            cnt[f"trig_{unit}"] += 1
            if unit == "ctrl":
                if op == "halt":
                    self.halted = True
                else:
                    next_pc = value % c.imem_depth
                continue
            u = self.units[unit]
            ops = {p: operand_w.get((unit, p), v) for p, v in u.operands.items()}
            result = None
            if unit == "alu":
                result = alu(op, ops["in1"], value)
            elif unit == "lsu":
                result, store = self._lsu(op, value + ops["base"], ops["data"])
            elif unit == "vmac":
                result, vstore = self._vmac(op, value, ops)
            if result is not None:
                u.pipe.append((cycle + u.latency, result))

        for (unit, port), value in operand_w.items():
            self.units[unit].operands[port] = value
        for i, v in reg_w.items():
            self.regs[i] = v
        for i, v in bool_w.items():
            self.bools[i] = v
        for write in (store, vstore):  # the vector unit's write lands last
            if write is not None:
                addr, data = write
                self.dmem[addr:addr + len(data)] = data
        if self.halted:
            next_pc = self.pc
        self.pc = next_pc
        self.cycle += 1
        self.tick += 1
        cnt["cycles"] += 1

    def _bank_conflict(self, triggers: dict, operand_w: dict) -> bool:
        """The LSU and the vector unit reading, or both writing, one bank in this instruction."""
        if "lsu" not in triggers or "vmac" not in triggers:
            return False
        c = self.config
        row_bytes, rows = c.vector_width // 8, c.dmem_rows
        op, value = triggers["lsu"]
        base = operand_w.get(("lsu", "base"), self.units["lsu"].operands["base"])
        lsu_row = ((value + base) & (c.dmem_bytes - 1)) // row_bytes
        vop, vvalue = triggers["vmac"]
        if vop in ("rq", "bin", "ter"):
            v_row, v_write = (vvalue % rows if vop == "rq" else vvalue % (rows * row_bytes)
                              // row_bytes), True
        elif vop in VECTOR_READS:
            v_row, v_write = vvalue % rows, False
        else:
            return False
        if v_write != op.startswith("st"):
            return False  # a read and a write use different ports
        per_bank = rows // c.dmem_banks
        return lsu_row // per_bank == v_row // per_bank

    def _lsu(self, op: str, value: int, data: int):
        cnt, mask = self.counters, self.config.dmem_bytes - 1
        addr = value & mask
        if op in ("ldw", "stw"):
            addr &= ~3
            if op == "ldw":
                cnt["dmem_read_bits"] += 32
                return int.from_bytes(self.dmem[addr:addr + 4].tobytes(), "little"), None
            cnt["dmem_write_bits"] += 32
            return None, (addr, np.frombuffer(data.to_bytes(4, "little"), dtype=np.uint8))
        if op == "stb":
            cnt["dmem_write_bits"] += 8
            return None, (addr, np.array([data & 0xFF], dtype=np.uint8))
        assert op in ("ldb", "ldbu"), op
        cnt["dmem_read_bits"] += 8
        byte = int(self.dmem[addr])
        return (byte - 256 if byte > 127 and op == "ldb" else byte) & M32, None

    def _vmac(self, op: str, value: int, ops: dict[str, int]):
        c = self.config
        result, write, events = self.vector.execute(op, value, ops, self._row)
        for name, n in events.items():
            self.counters[name] += n
        if write is None:
            return result, None
        row, offset, data = write
        return result, (row * (c.vector_width // 8) + offset, data)

    def _row(self, row: int) -> np.ndarray:
        n = self.config.vector_width // 8
        start = (row % self.config.dmem_rows) * n
        return self.dmem[start:start + n]


class VectorUnit:
    """The vector unit's state and operations, apart from the core (the cocotb bench uses it too).

    `execute` returns (result or None, memory write or None, counter increments); a write is
    (row, byte offset in the row, bytes) and lands at the end of the cycle.
    """

    def __init__(self, width: int, rows: int):
        self.width, self.rows, self.group = width, rows, width // 8
        self.acc = np.zeros(width, np.int64)  # one accumulator per binary lane
        self.bank = {name: np.zeros(self.group, np.int64) for name in ("bias", "mul", "shift")}

    def execute(self, op: str, value: int, ops: dict[str, int], read_row):
        if op == "get":
            return int(self.acc[value % self.width]) & M32, None, {}
        if op in VPP_OPS:
            return self._post_process(op, value, ops, read_row)
        dot = next((p for p, names in DOT_PRECISIONS.items() if op in names), None)
        precision = dot or next(p for p, (_, *names) in PRECISIONS.items() if op in names)
        bits = PRECISIONS[precision][0]
        w = _values(read_row(value % self.rows), bits)
        if dot:  # lane l: its 32-bit slice of the row against the 32 bits of packed x
            x = _values(np.frombuffer((ops["x"] & M32).to_bytes(4, "little"), np.uint8), bits)
            terms = w.reshape(self.width // 32, -1) @ x
            lanes = (ops["base"] + np.arange(len(terms))) % self.width
        else:  # the signed low byte of x broadcast to every lane
            terms, lanes = _s8(ops["x"]) * w, np.arange(len(w))
        start = 0 if op.endswith("0") else self.acc[lanes]
        self.acc[lanes] = _wrap(start + terms)
        return None, None, {"dmem_read_bits": self.width, f"vmac_mac{bits}": 1}

    def _post_process(self, op: str, value: int, ops: dict[str, int], read_row):
        """Post-processing of the W/8 accumulator lanes base .. base + W/8 - 1 (mod W)."""
        g = self.group
        if op == "brep":  # bank[j] = bank[j & mask] for every lane j
            src = np.arange(g) & (value % g)
            for bank in self.bank.values():
                bank[:] = bank[src]
            return None, None, {}
        if op in ("sbias", "smul", "sshift"):
            bank = self.bank[op[1:]]
            prm = ops["prm"]
            bank[value % g] = ((prm & 63) ^ 32) - 32 if op == "sshift" else s32(prm)
            return None, None, {}
        lanes = (ops["base"] + np.arange(g)) % self.width
        acc = self.acc[lanes]
        if op in ("aset", "radd", "amax"):
            x = read_row(value % self.rows).view(np.int8).astype(np.int64)
            self.acc[lanes] = {"aset": lambda: x,
                               "radd": lambda: _wrap(acc + x * s32(ops["prm"])),
                               "amax": lambda: np.maximum(acc, x)}[op]()
            return None, None, {"dmem_read_bits": self.width, "vpp_groups": 1}
        v = _wrap(acc + self.bank["bias"])
        if op == "rq":
            y = v
            if not ops["cfg"] >> 16 & 1:  # bit 16 bypasses the multiplier and shift
                y = requantize(v, self.bank["mul"], self.bank["shift"])
            y = y + _s8(ops["cfg"] >> 24)  # output zero point
            y = np.minimum(np.maximum(y, _s8(ops["cfg"])), _s8(ops["cfg"] >> 8))  # hi wins
            data = y.astype(np.int8).view(np.uint8)
            return None, (value % self.rows, 0, data), {"dmem_write_bits": self.width,
                                                         "vpp_groups": 1}
        if op == "bin":
            bits = (v >= 0).astype(np.uint8)
        else:  # ter: +1 above the threshold in the mul bank, -1 below its negative
            thr = self.bank["mul"]
            codes = np.where(v > thr, 1, np.where(v < _wrap(-thr), 3, 0)).astype(np.uint8)
            bits = np.unpackbits(codes[:, None], axis=1, bitorder="little")[:, :2].ravel()
        data = np.packbits(bits, bitorder="little")
        addr = value % (self.rows * g)
        offset = addr % g
        offset -= offset % len(data)  # aligned to its size, so it never crosses a row
        return None, (addr // g, offset, data), {"dmem_write_bits": 8 * len(data),
                                                  "vpp_groups": 1}


def requantize(v: np.ndarray, mul: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The post-processing requantizer on int32 values (hw/ISA.md): for shift >= 0,
    t = (v * mul + 2^31) >> 32 then a rounding right shift; for shift < 0, the 64-bit product
    (wrapping) shifted left by -shift, then (+ 2^31) >> 32."""
    v, mul, shift = (np.asarray(a, np.int64) for a in (v, mul, shift))
    left = np.maximum(-shift, 0)
    right = np.maximum(shift, 0)
    p = (v * mul) << left  # int64 arithmetic wraps like the RTL's 64-bit product
    t = (p + np.int64(1 << 31)) >> 32
    return np.where(shift < 0, t, (t + ((np.int64(1) << right) >> 1)) >> right)


def _values(packed: np.ndarray, bits: int) -> np.ndarray:
    """Signed values of packed little-endian fields: int8 bytes, ternary codes (bit 0 =
    nonzero, bit 1 = negative) or bits (1 -> +1, 0 -> -1)."""
    if bits == 8:
        return packed.view(np.int8).astype(np.int64)
    fields = np.unpackbits(packed, bitorder="little").reshape(-1, bits).astype(np.int64)
    if bits == 1:
        return 2 * fields[:, 0] - 1
    return fields[:, 0] * (1 - 2 * fields[:, 1])


def _s8(x: int) -> int:
    x &= 0xFF
    return x - 256 if x > 127 else x


def _wrap(a: np.ndarray) -> np.ndarray:
    """Wrap int64 values to int32."""
    return ((a + 2**31) % 2**32) - 2**31


assert ALU_OPS == UNITS["alu"].opcodes
