"""The golden instruction-level model: the living definition of the instruction set.

Every cycle executes one instruction. Its moves read their sources as they stand at the start of
the cycle (guards too) and write their destinations at its end; when several moves in one cycle
write one port, the highest slot wins. A trigger uses operand values written in the same cycle.
A unit's result appears on its result port `latency` cycles after the trigger and stays until
the next result. Loads and vector reads see memory at the start of the cycle; stores land at its
end. Out-of-range addresses wrap (memory sizes are powers of two).
"""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np

from hw.asm import Program
from hw.config import AccelConfig
from hw.machine import Machine, MachineState
from hw.units import BITS, DOT_PRECISIONS, EW_PRECISIONS, PRECISIONS, UNITS, op_spec

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
    """The instruction-level model of the core: the executable definition of the ISA
    (`hw/ISA.md`), cycle for cycle and counter for counter what the RTL must do."""

    def __init__(self, config: AccelConfig):
        super().__init__(config)
        enc = self.encoding
        self.imem = [0] * config.imem_depth
        self.dmem = np.zeros(config.dmem_bytes, dtype=np.uint8)
        self.offchip = np.zeros(config.offchip.bytes, dtype=np.uint8)
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
        self.dma = DmaUnit(c)
        self.stalled = False  # the previous cycle was a stall (an LSU-vector conflict costs one)
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

    def write_offchip(self, addr: int, data) -> None:
        data = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) \
            else data.astype(np.uint8).ravel()
        self._check_offchip_range(addr, len(data))
        self.offchip[addr:addr + len(data)] = data

    def read_offchip(self, addr: int, n: int) -> np.ndarray:
        self._check_offchip_range(addr, n)
        return self.offchip[addr:addr + n].copy()

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
            self.step(start + max_cycles)
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
            self._moves["rf_reads"] += 1
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

    def step(self, deadline: int | None = None) -> None:
        """One instruction, after its stall cycles; with a deadline (a clock cycle), stop
        stalling there and leave the instruction for later, as the RTL's cycle limit does."""
        c, cnt, cycle = self.config, self.counters, self.tick
        for u in self.units.values():
            u.deliver(cycle)
        reg_w: dict[int, int] = {}
        bool_w: dict[int, int] = {}
        operand_w: dict[tuple[str, str], int] = {}
        triggers: dict[str, tuple[str, int]] = {}
        moves = self._moves = defaultdict(int)  # counted when the instruction executes
        for slot, g, src, dst in self._decode(self.pc):
            if not self._guard(g):
                continue
            value = self._source(src)
            moves[f"moves_bus{slot}"] += 1
            kind = self._dst_kind[dst] if dst < len(self._dst_kind) else ("none",)
            if kind[0] == "reg":
                reg_w[kind[1]] = value
                moves["rf_writes"] += 1
            elif kind[0] == "bool":
                bool_w[kind[1]] = value & 1
            elif kind[0] == "operand":
                operand_w[(kind[1], kind[2])] = value
            elif kind[0] == "trigger":
                triggers[kind[1]] = (kind[2], value)

        accesses = self._accesses(triggers, operand_w)
        while True:  # stall cycles: the DMA runs on, the instruction waits
            dma_block = self._dma_blocks(triggers, accesses)
            conflict = c.dmem_banks > 1 and not self.stalled and self._bank_conflict(accesses)
            if not (dma_block or conflict):
                break
            if deadline is not None and self.cycle >= deadline:
                return
            self._dma_cycle()
            cnt["cycles"] += 1
            cnt["stall_cycles"] += 1
            cnt["dma_stall_cycles"] += dma_block
            self.cycle += 1
            self.stalled = True
        self.stalled = False
        for name, n in moves.items():
            cnt[name] += n
        next_pc = (self.pc + 1) % c.imem_depth
        store = vstore = None
        for unit, (op, value) in triggers.items():
            cnt[f"trig_{unit}"] += 1
            for name, n in op_spec(unit, op).events(c.vector_width).items():
                cnt[name] += n
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
            elif unit == "dma" and op != "wait":
                self.dma.start(op, value, ops["ext"], ops["shape"], self.cycle)
            if result is not None:
                u.pipe.append((cycle + u.latency, result))

        # the DMA's row access: after the instruction's reads (a row the DMA writes this cycle
        # is new only from the next), before its writes (a row the DMA reads is the old one)
        self._dma_cycle()
        for (unit, port), value in operand_w.items():
            self.units[unit].operands[port] = value
        for i, v in reg_w.items():
            self.regs[i] = v
        for i, v in bool_w.items():
            self.bools[i] = v
        for write in (store, vstore):  # the vector unit's write lands last
            if write is not None:
                addr, data, mask = write
                old = self.dmem[addr:addr + len(data)]
                self.dmem[addr:addr + len(data)] = (old & ~mask) | (data & mask)
        if self.halted:
            next_pc = self.pc
        self.pc = next_pc
        self.cycle += 1
        self.tick += 1
        cnt["cycles"] += 1

    def _accesses(self, triggers: dict, operand_w: dict) -> dict[str, list[tuple[str, int]]]:
        """The data-memory banks this instruction reads and writes, per port: "lsu" and
        "vmac" -> [("read" | "write", bank)] (the window's two rows are one access)."""
        c = self.config
        row_bytes, rows, per_bank = c.vector_width // 8, c.dmem_rows, c.dmem_rows // c.dmem_banks
        out: dict[str, list[tuple[str, int]]] = {}
        if "lsu" in triggers:
            op, value = triggers["lsu"]
            base = operand_w.get(("lsu", "base"), self.units["lsu"].operands["base"])
            bank = ((value + base) & (c.dmem_bytes - 1)) // row_bytes // per_bank
            out["lsu"] = [("read" if op_spec("lsu", op).read else "write", bank)]
        if "vmac" in triggers:
            op, value = triggers["vmac"]
            spec, acc = op_spec("vmac", op), []
            ops = self.units["vmac"].operands
            if spec.row_read:  # offset by wb, as the unit reads it
                wb = operand_w.get(("vmac", "wb"), ops["wb"])
                acc.append(("read", (value + wb) % rows // per_bank))
            if spec.window_read:
                addr = sum(operand_w.get(("vmac", p), ops[p]) for p in ("x", "xb"))
                row = (addr & M32) // (c.vector_width // 32) % rows
                acc += [("read", row // per_bank), ("read", (row + 1) % rows // per_bank)]
            if spec.write:
                row = value % rows if spec.write in ("row", "lanes") else \
                    value % (rows * row_bytes) // row_bytes
                acc.append(("write", row // per_bank))
            out["vmac"] = acc
        return out

    def _bank_conflict(self, accesses: dict) -> bool:
        """The LSU and the vector unit reading, or both writing, one bank in this instruction."""
        return any(a in accesses.get("vmac", []) for a in accesses.get("lsu", []))

    def _dma_blocks(self, triggers: dict, accesses: dict) -> bool:
        """The instruction waits for the DMA: a DMA trigger while it is busy, or its row access
        this cycle meets one of the instruction's in the same bank and direction."""
        if "dma" in triggers and self.dma.busy(self.cycle):
            return True
        access = self.dma.access(self.cycle)
        if access is None:
            return False
        kind, row, _ = access
        bank = (kind, row // (self.config.dmem_rows // self.config.dmem_banks))
        return any(bank in a for a in accesses.values())

    def _dma_cycle(self) -> None:
        """The DMA's row access of this cycle, if any (reads see the memory at the start of the
        cycle; a write lands at its end, before the core's writes, which never share its bank)."""
        access = self.dma.access(self.cycle)
        if access is None:
            return
        kind, row, ext = access
        c, cnt = self.config, self.counters
        n = c.vector_width // 8
        ext_idx = (ext + np.arange(n)) % c.offchip.bytes
        if kind == "write":  # off-chip -> data memory
            self.dmem[row * n:(row + 1) * n] = self.offchip[ext_idx]
            cnt["dmem_write_bits"] += c.vector_width
            cnt["offchip_read_bits"] += c.vector_width
        else:
            self.offchip[ext_idx] = self.dmem[row * n:(row + 1) * n]
            cnt["dmem_read_bits"] += c.vector_width
            cnt["offchip_write_bits"] += c.vector_width

    def _lsu(self, op: str, value: int, data: int):
        addr = value & (self.config.dmem_bytes - 1)
        if op in ("ldw", "stw"):
            addr &= ~3
            if op == "ldw":
                return int.from_bytes(self.dmem[addr:addr + 4].tobytes(), "little"), None
            return None, (addr, np.frombuffer(data.to_bytes(4, "little"), dtype=np.uint8),
                          np.full(4, 255, np.uint8))
        if op == "stb":
            return None, (addr, np.array([data & 0xFF], dtype=np.uint8), np.uint8(255))
        byte = int(self.dmem[addr])
        return (byte - 256 if byte > 127 and op == "ldb" else byte) & M32, None

    def _vmac(self, op: str, value: int, ops: dict[str, int]):
        result, write = self.vector.execute(op, value, ops, self._row)
        if write is None:
            return result, None
        row, offset, data, mask = write
        return result, (row * (self.config.vector_width // 8) + offset, data, mask)

    def _row(self, row: int) -> np.ndarray:
        n = self.config.vector_width // 8
        start = (row % self.config.dmem_rows) * n
        return self.dmem[start:start + n]


class DmaUnit:
    """One transfer at a time of `shape & 0xFFF` whole rows, row i between data row
    (trigger + i) mod rows and off-chip bytes (ext + i * stride) mod size, stride =
    `shape >> 12` bytes (0: one row's bytes). A load reads off-chip and writes row i at the end
    of cycle t0 + latency + i * cpr; a store reads row i in cycle t0 + 1 + i * cpr and writes it
    off-chip; t0 is the trigger's cycle, cpr = ceil(W / bits_per_cycle). It is busy from t0
    until its last row has landed (a store: latency cycles after its last read)."""

    def __init__(self, config: AccelConfig):
        off = config.offchip
        self.rows, self.row_bytes = config.dmem_rows, config.vector_width // 8
        self.latency, self.cpr = off.latency_cycles, off.cycles_per_row(config.vector_width)
        self.transfer: tuple | None = None  # (op, first row, ext, rows, stride, t0)

    def start(self, op: str, value: int, ext: int, shape: int, cycle: int) -> None:
        n, stride = shape & 0xFFF, (shape >> 12) & 0xFFFFF
        self.transfer = (op, value % self.rows, ext, n, stride or self.row_bytes, cycle) \
            if n else None

    def _first(self) -> int:
        op, *_, t0 = self.transfer
        return t0 + (self.latency if op == "load" else 1)

    def busy(self, cycle: int) -> bool:
        if self.transfer is None:
            return False
        op, _, _, n, _, _ = self.transfer
        last = self._first() + (n - 1) * self.cpr
        return cycle <= last + (0 if op == "load" else self.latency - 1)

    def access(self, cycle: int) -> tuple[str, int, int] | None:
        """("write" | "read", data row, off-chip address) of this cycle, if the DMA has one."""
        if self.transfer is None:
            return None
        op, row, ext, n, stride, _ = self.transfer
        i, rem = divmod(cycle - self._first(), self.cpr)
        if rem or not 0 <= i < n:
            return None
        return ("write" if op == "load" else "read", (row + i) % self.rows, ext + i * stride)


_MAC_FORMS = {op: (form, BITS[p]) for form, table in
              (("broadcast", {p: v[1:] for p, v in PRECISIONS.items()}), ("dot", DOT_PRECISIONS),
               ("elementwise", EW_PRECISIONS)) for p, ops in table.items() for op in ops}


class VectorUnit:
    """The vector unit's state and operations, apart from the core (the cocotb bench uses it too).

    `execute` returns (result or None, memory write or None); a write is (row, byte offset in
    the row, bytes, bit mask of the bytes) and lands at the end of the cycle. `read_row(r)`
    gives data row r (mod rows).
    """

    def __init__(self, width: int, rows: int):
        self.width, self.rows, self.group = width, rows, width // 8
        self.words = width // 32  # L: 32-bit words per row, output lanes of the dot form
        self.acc = np.zeros(width, np.int64)  # one accumulator per binary lane
        self.bank = {name: np.zeros(self.group, np.int64) for name in ("bias", "mul", "shift")}
        self.table = np.zeros(256, np.uint8)  # the lookup table of lut

    def execute(self, op: str, value: int, ops: dict[str, int], read_row):
        if op == "get":
            return int(self.acc[value % self.width]) & M32, None
        # ab offsets the accumulator base; wb every row the row port reads (not the window's,
        # not the rows written)
        ops = {**ops, "base": (ops["base"] + ops["ab"]) & M32}

        def port(r: int) -> np.ndarray:
            return read_row((r + ops["wb"]) % self.rows)
        if op in _MAC_FORMS:
            self._mac(op, value, ops, port, read_row)
            return None, None
        return None, self._post_process(op, value, ops, port)

    def window(self, ops: dict[str, int], read_row) -> tuple[np.ndarray, int]:
        """The activation window: rows R and R + 1 (mod rows) as one little-endian byte string,
        R the row of word address xb + x, and the word offset of that address in row R."""
        addr = (ops["xb"] + ops["x"]) & M32
        row = addr // self.words
        return np.concatenate([read_row(row % self.rows), read_row((row + 1) % self.rows)]), \
            addr % self.words

    def _mac(self, op: str, value: int, ops: dict[str, int], port, read_row) -> None:
        form, bits = _MAC_FORMS[op]
        w = _values(port(value), bits)
        if form == "broadcast":  # the signed low byte of x times every lane's weight
            terms, lanes = _s8(ops["x"]) * w, np.arange(len(w))
        else:
            window, offset = self.window(ops, read_row)
            n = self.words if form == "dot" else len(w)  # lanes
            if form == "dot":  # lane l: word `first` of the window against word l of the row
                # groups of 2^log_k lanes, group j from word offset + j * 2^(shift - 1) (shift
                # 0: all from offset): powers of two, so the hardware shifts (no crossbar)
                shift, log_k = ops["vg"] & 255, ops["vg"] >> 8 & 15
                group = np.arange(n) >> log_k
                step = (1 << (shift - 1)) % (2 * self.words) if shift else 0
                first = (offset + group * step) % (2 * self.words)
                x = _values(window, bits).reshape(2 * self.words, -1)[first]
                terms = (w.reshape(n, -1) * x).sum(axis=1)
            else:  # lane l: element l of the elements from word `offset` on (mod the window)
                per_word = 32 // bits
                elem = (offset * per_word + np.arange(n)) % (2 * self.words * per_word)
                terms = w * _values(window, bits)[elem]
            lanes = (ops["base"] % self.width) // n * n + np.arange(n)  # aligned to n lanes
        start = 0 if op.endswith("0") else self.acc[lanes]
        self.acc[lanes] = _wrap(start + terms)

    def _post_process(self, op: str, value: int, ops: dict[str, int], read_row):
        """Parameter banks, and post-processing of the G = W/8 accumulator lanes from base
        (rounded down to a multiple of G); racc works on W/32 lanes."""
        g = self.group
        if op in ("sbias", "smul", "sshift"):
            bank = self.bank[op[1:]]
            prm = ops["prm"]
            bank[value % g] = ((prm & 63) ^ 32) - 32 if op == "sshift" else s32(prm)
            return None
        if op in ("lbias", "lmul"):  # part prm mod 4 of the bank from the row's int32 words
            words = read_row(value).view("<i4").astype(np.int64)
            part = ops["prm"] % (g // self.words)
            self.bank[op[1:]][part * self.words:(part + 1) * self.words] = words
            return None
        if op == "lshift":  # every entry from the low 6 bits of one byte, signed
            self.bank["shift"][:] = ((read_row(value).astype(np.int64) & 63) ^ 32) - 32
            return None
        if op == "llut":  # part prm mod (256 / G) of the table: the row's first G bytes
            n = min(g, 256)
            part = ops["prm"] % (256 // n)
            self.table[part * n:(part + 1) * n] = read_row(value)[:n]
            return None
        if op == "lut":  # the W/32 bytes of the block base points into, through the table
            part = (ops["base"] % self.width) % g // self.words * self.words
            data, mask = np.zeros(g, np.uint8), np.zeros(g, np.uint8)
            lanes = slice(part, part + self.words)
            data[lanes], mask[lanes] = self.table[read_row(value)[lanes]], 255
            return value % self.rows, 0, data, mask
        if op == "racc":  # W/32 lanes + bias as int32 words of a row
            base = (ops["base"] % self.width) // self.words * self.words
            bias = self.bank["bias"][base % g:base % g + self.words]
            data = _wrap(self.acc[base:base + self.words] + bias).astype("<i4").view(np.uint8)
            return value % self.rows, 0, data, np.full(len(data), 255, np.uint8)
        base = (ops["base"] % self.width) // g * g
        lanes = slice(base, base + g)
        acc = self.acc[lanes]
        rounding = _rounding(ops["cfg"])
        if op in ("aset", "radd", "amax", "rsc0", "rsc"):
            x = read_row(value).view(np.int8).astype(np.int64)
            if op in ("rsc0", "rsc"):  # each byte offset, shifted and rescaled by scalars
                offset, left, shift = _s9(ops["x"] >> 16), ops["x"] >> 8 & 31, _s6(ops["x"])
                y = requantize(_wrap((x + offset) << left), s32(ops["prm"]), shift, rounding)
            self.acc[lanes] = {"aset": lambda: x,
                               "radd": lambda: _wrap(acc + x * s32(ops["prm"])),
                               "amax": lambda: np.maximum(acc, x),
                               "rsc0": lambda: _wrap(y),
                               "rsc": lambda: _wrap(acc + y)}[op]()
            return None
        v = _wrap(acc + self.bank["bias"])
        # cfg bit 17: write only the W/32 lanes of the group's block that base points into
        keep = np.ones(g, bool)
        if ops["cfg"] >> 17 & 1:
            part = (ops["base"] % self.width) % g // self.words * self.words
            keep[:] = False
            keep[part:part + self.words] = True
        if op == "rq":
            y = v
            if not ops["cfg"] >> 16 & 1:  # bit 16 bypasses the multiplier and shift
                y = requantize(v, self.bank["mul"], self.bank["shift"], rounding)
            y = y + _s8(ops["cfg"] >> 24)  # output zero point
            y = np.minimum(np.maximum(y, _s8(ops["cfg"])), _s8(ops["cfg"] >> 8))  # hi wins
            return value % self.rows, 0, y.astype(np.int8).view(np.uint8), \
                np.where(keep, 255, 0).astype(np.uint8)
        if op == "bin":
            bits, kept = (v >= 0).astype(np.uint8), keep
        else:  # ter: +1 above the threshold in the mul bank, -1 below its negative
            thr = self.bank["mul"]
            negative = (v < _wrap(-thr)) & (not ops["cfg"] >> 18 & 1)  # bit 18: after a ReLU
            codes = np.where(v > thr, 1, np.where(negative, 3, 0)).astype(np.uint8)
            bits = np.unpackbits(codes[:, None], axis=1, bitorder="little")[:, :2].ravel()
            kept = np.repeat(keep, 2)
        data = np.packbits(bits, bitorder="little")
        mask = np.packbits(kept.astype(np.uint8), bitorder="little")
        addr = value % (self.rows * g)
        offset = addr % g
        offset -= offset % len(data)  # aligned to its size, so it never crosses a row
        return addr // g, offset, data, mask


def _rounding(cfg: int) -> str:
    """The requantizer's rounding from cfg bits 20:19 (hw/ISA.md)."""
    return "single" if cfg >> 20 & 1 else "tflite" if cfg >> 19 & 1 else "double"


def requantize(v, mul, shift, rounding: str = "double") -> np.ndarray:
    """The post-processing requantizer on int32 values (hw/ISA.md). The project's rounding: for
    shift >= 0, t = (v * mul + 2^31) >> 32 then a rounding right shift; for shift < 0, the
    64-bit product (wrapping) shifted left by -shift, then (+ 2^31) >> 32. TFLite's gemmlowp
    rounding (cfg bit 19): v shifted left by -shift (int32 wrap), the doubling high multiply
    rounded (ties up), then a right shift by shift rounded half away from zero. TFLite's single
    rounding (cfg bit 20): (v * mul + 2^(30 + shift)) >> (31 + shift)."""
    v, mul, shift = (np.asarray(a, np.int64) for a in (v, mul, shift))
    left = np.maximum(-shift, 0)
    right = np.maximum(shift, 0)
    if rounding == "single":
        total = np.maximum(31 + shift, 0)
        return _wrap((v * mul + ((np.int64(1) << total) >> 1)) >> total)  # its low word
    if rounding == "tflite":
        x = _wrap(v << left)
        p = x * mul
        s = p + np.where(p >= 0, 1 << 30, 1 - (1 << 30))
        t = np.where(s >= 0, s >> 31, -((-s) >> 31))  # toward zero
        t = np.where((x == -2**31) & (mul == -2**31), 2**31 - 1, t)
        mask = (np.int64(1) << right) - 1
        return (t >> right) + ((t & mask) > (mask >> 1) + (t < 0))
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


def _s6(x: int) -> int:
    return ((x & 63) ^ 32) - 32


def _s9(x: int) -> int:
    return ((x & 511) ^ 256) - 256


def _s8(x: int) -> int:
    x &= 0xFF
    return x - 256 if x > 127 else x


def _wrap(a: np.ndarray) -> np.ndarray:
    """Wrap int64 values to int32."""
    return ((a + 2**31) % 2**32) - 2**31
