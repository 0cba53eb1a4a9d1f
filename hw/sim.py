"""The RTL engine: the Verilated core (built by hw/build.py) driven through ctypes; the off-chip
memory lives in its harness."""

from __future__ import annotations

import ctypes

import numpy as np

from hw.asm import Program
from hw.build import ST_BOOL0, ST_CNT0, ST_PC, build_core
from hw.config import AccelConfig
from hw.errors import SimulationError
from hw.machine import Machine, MachineState

IMEM, DMEM, STATE = 0, 1, 2
_u32p = np.ctypeslib.ndpointer(dtype=np.uint32, flags="C_CONTIGUOUS")
_libs: dict[str, ctypes.CDLL] = {}


def _load(path: str) -> ctypes.CDLL:
    if path not in _libs:
        lib = ctypes.CDLL(path)
        lib.tta_create.restype = ctypes.c_void_p
        lib.tta_destroy.argtypes = [ctypes.c_void_p]
        lib.tta_reset.argtypes = [ctypes.c_void_p]
        io = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32,
              _u32p]
        lib.tta_write.argtypes = io
        lib.tta_read.argtypes = io
        lib.tta_run.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
        lib.tta_run.restype = ctypes.c_int64
        lib.tta_set_offchip.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
        bytes_io = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                    np.ctypeslib.ndpointer(dtype=np.uint8, flags="C_CONTIGUOUS")]
        lib.tta_offchip_write.argtypes = bytes_io
        lib.tta_offchip_read.argtypes = bytes_io
        if hasattr(lib, "tta_set_fault"):  # fault-injection builds
            lib.tta_set_fault.argtypes = [ctypes.c_void_p] + [ctypes.c_uint32] * 3
        _libs[path] = lib
    return _libs[path]


class RtlSimulator(Machine):
    """The cycle-accurate RTL of one config; memories survive `reset`."""

    def __init__(self, config: AccelConfig, fault_port: bool = False):
        super().__init__(config)
        self.fault_port = fault_port
        self._lib = _load(str(build_core(config, fault_port=fault_port)))
        self._h = self._lib.tta_create()
        self._lib.tta_set_offchip(self._h, config.offchip.bytes)
        self._row_words = config.vector_width // 32

    def __del__(self):
        if getattr(self, "_h", None):
            self._lib.tta_destroy(self._h)
            self._h = None

    # Linear 32-bit word addressing, see tta_write in hw/harness/harness.cpp.
    def _write(self, space: int, first: int, per_entry: int, words: np.ndarray) -> None:
        words = np.ascontiguousarray(words, dtype=np.uint32)
        self._lib.tta_write(self._h, space, first, len(words), per_entry, words)

    def _read(self, space: int, first: int, n: int, per_entry: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.uint32)
        self._lib.tta_read(self._h, space, first, n, per_entry, out)
        return out

    def stuck_at(self, lane: int, stuck0: int = 0, stuck1: int = 0) -> None:
        """Bits of lane `lane`'s accumulator register stuck at 0 (mask stuck0) and at 1
        (stuck1), permanent until changed; (0, 0): none. Fault-injection builds only."""
        if not self.fault_port:
            raise SimulationError("stuck-at faults need the fault-injection build "
                                  "(RtlSimulator(config, fault_port=True))")
        if not 0 <= lane < self.config.vector_width:
            raise SimulationError(f"lane {lane} outside 0..{self.config.vector_width - 1}")
        if stuck0 & stuck1:
            raise SimulationError(f"bits {stuck0 & stuck1:#x} stuck at both 0 and 1")
        self._lib.tta_set_fault(self._h, lane, ~stuck0 & 0xFFFFFFFF, stuck1 & 0xFFFFFFFF)

    # --- Machine interface ------------------------------------------------------------------
    def reset(self) -> None:
        self._lib.tta_reset(self._h)

    def load_program(self, program: Program, base: int = 0) -> None:
        self._write(IMEM, base * self.encoding.words, self.encoding.words, program.harness_words())

    def write_dmem(self, addr: int, data) -> None:
        data = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) \
            else data.astype(np.uint8).ravel()
        self._check_dmem_range(addr, len(data))
        lo, hi = addr // 4, (addr + len(data) + 3) // 4
        if addr % 4 or len(data) % 4:  # read-modify-write the partly covered words
            buf = self._read_words(lo, hi - lo).view(np.uint8).copy()
            buf[addr - 4 * lo:addr - 4 * lo + len(data)] = data
        else:
            buf = data
        self._write_words(lo, buf.view(np.uint32))

    def read_dmem(self, addr: int, n: int) -> np.ndarray:
        self._check_dmem_range(addr, n)
        lo, hi = addr // 4, (addr + n + 3) // 4
        return self._read_words(lo, hi - lo).view(np.uint8)[addr - 4 * lo:addr - 4 * lo + n].copy()

    def _write_words(self, first_word: int, words: np.ndarray) -> None:
        self._write(DMEM, first_word, self._row_words, words)

    def _read_words(self, first_word: int, n: int) -> np.ndarray:
        return self._read(DMEM, first_word, n, self._row_words)

    def write_offchip(self, addr: int, data) -> None:
        data = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) \
            else np.ascontiguousarray(data, np.uint8).ravel()
        self._check_offchip_range(addr, len(data))
        self._lib.tta_offchip_write(self._h, addr, len(data), data)

    def read_offchip(self, addr: int, n: int) -> np.ndarray:
        self._check_offchip_range(addr, n)
        out = np.zeros(n, np.uint8)
        self._lib.tta_offchip_read(self._h, addr, n, out)
        return out

    def set_pc(self, pc: int) -> None:
        self._write(STATE, ST_PC, 1, np.array([pc % self.config.imem_depth], np.uint32))

    def _run(self, max_cycles: int) -> int | None:
        n = self._lib.tta_run(self._h, max_cycles)
        return None if n < 0 else int(n)

    def state(self) -> MachineState:
        c = self.config
        regs = self._read(STATE, 0, c.registers, 1)
        bools = self._read(STATE, ST_BOOL0, c.bool_registers, 1)
        pc, halted = self._read(STATE, ST_PC, 2, 1)
        cnt = self._read(STATE, ST_CNT0, 2 * len(self.counter_names), 1).astype(np.uint64)
        values = cnt[0::2] | (cnt[1::2] << np.uint64(32))
        return MachineState(int(pc), bool(halted), tuple(int(r) for r in regs),
                            tuple(int(b) for b in bools),
                            {n: int(v) for n, v in zip(self.counter_names, values)})
