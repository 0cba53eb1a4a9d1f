"""Accelerator configs: YAML read once into a validated, frozen `AccelConfig`."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from hw.energy import ENERGY_EVENTS
from hw.errors import ConfigError
from hw.units import OPTIONAL_UNITS, UNITS


@dataclass(frozen=True)
class UnitConfig:
    type: str
    latency: int


@dataclass(frozen=True)
class OffchipConfig:
    """The off-chip memory the DMA unit reaches, a model: an LPDDR4-class part (x16 at
    3200 MT/s is 6.4 GB/s peak; 128 bits per 300 MHz cycle is 4.8 GB/s sustained), ~100 ns to
    the first data, a few pJ per bit moved (published LPDDR4 figures are of that order)."""

    bytes: int = 1 << 24
    bits_per_cycle: int = 128
    latency_cycles: int = 30
    read_pj_per_bit: float = 4.0
    write_pj_per_bit: float = 4.0

    def cycles_per_row(self, width: int) -> int:
        """Cycles the interface needs per data-memory row of `width` bits."""
        return -(-width // self.bits_per_cycle)


@dataclass(frozen=True)
class AccelConfig:
    name: str
    clock_mhz: float
    buses: int
    vector_width: int  # W, bits per data-memory row and per vector operand
    registers: int  # 32-bit general registers r0..
    bool_registers: int  # 1-bit guard registers b0..
    short_imm_bits: int  # signed immediate carried in a move's source field
    imem_depth: int  # instructions
    dmem_rows: int  # rows of W bits
    units: tuple[UnitConfig, ...]
    energy_pj: tuple[tuple[str, float], ...]  # event -> picojoules, in ENERGY_EVENTS order
    dmem_banks: int = 1  # data-memory banks of dmem_rows / banks consecutive rows
    offchip: OffchipConfig = OffchipConfig()
    # Check bits per 32-bit data-memory word (PROTECTION): none, parity (1, detects an odd
    # number of flips) or secded (7, Hamming (39, 32): corrects one flip, detects two). A model:
    # the fault engine applies it and the cost model charges its bits; the RTL holds no check
    # bits, and the decode is taken as pipelined into the read (no cycles).
    dmem_protection: str = "none"

    @property
    def lanes(self) -> int:
        """8-bit MAC lanes of the vector unit."""
        return self.vector_width // 8

    def lanes_at(self, bits: int) -> int:
        """Vector MAC lanes at a weight precision of 8, 2 or 1 bits."""
        return self.vector_width // bits

    @property
    def dmem_bytes(self) -> int:
        return self.dmem_rows * self.vector_width // 8

    @property
    def bank_bytes(self) -> int:
        return self.dmem_bytes // self.dmem_banks

    def has_unit(self, name: str) -> bool:
        return name == "ctrl" or any(u.type == name for u in self.units)

    def latency(self, name: str) -> int:
        for u in self.units:
            if u.type == name:
                return u.latency
        return UNITS[name].default_latency

    @property
    def unit_names(self) -> tuple[str, ...]:
        """Units present, ctrl first, then in registry order (fixes the encoding)."""
        return tuple(n for n in UNITS if self.has_unit(n))

    @property
    def energy(self) -> dict[str, float]:
        """Picojoules per event, off-chip bits included; a data-memory bit carries its share
        of the check bits (the codec's logic is not counted)."""
        table = dict(self.energy_pj)
        for k in ("dmem_read_bit", "dmem_write_bit"):
            table[k] *= self.dmem_bit_overhead
        return table | {"offchip_read_bit": self.offchip.read_pj_per_bit,
                        "offchip_write_bit": self.offchip.write_pj_per_bit}

    @property
    def dmem_bit_overhead(self) -> float:
        """Stored bits per data bit of the data memory."""
        return (32 + PROTECTION[self.dmem_protection]) / 32

    def to_dict(self) -> dict:
        """The YAML form: `parse_accel_config(c.to_dict())` gives c back."""
        d = asdict(self)
        d["units"] = [{"type": u.type, "latency": u.latency} for u in self.units]
        d["energy_pj"] = dict(self.energy_pj)
        d["offchip"] = asdict(self.offchip)
        return d

    def hardware_hash(self) -> str:
        """Hash of everything that shapes the RTL (not name, clock or energy table)."""
        hw = asdict(self)
        for k in ("name", "clock_mhz", "energy_pj", "dmem_protection"):  # a model, not RTL
            hw.pop(k)
        for k in ("read_pj_per_bit", "write_pj_per_bit"):
            hw["offchip"].pop(k)
        return hashlib.sha256(json.dumps(hw, sort_keys=True).encode()).hexdigest()[:16]


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class FieldReader:
    """Reads fields of one mapping, raising errors that name the file and the field."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping of fields, not {type(data).__name__}")
        self.data, self.where = data, where

    def fail(self, field: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: field '{field}': {message}")

    def get(self, field: str, default: Any = ...) -> Any:
        if field not in self.data:
            if default is ...:
                raise ConfigError(f"{self.where}: missing field '{field}'")
            return default
        return self.data[field]

    def int(self, field: str, lo: int, hi: int | None = None, default: Any = ...,
            pow2=False) -> int:
        value = self.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < lo or (
                hi is not None and value > hi):
            rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            raise self.fail(field, f"must be an integer {rng}, not {value!r}")
        if pow2 and not _is_pow2(value):
            raise self.fail(field, f"must be a power of two, not {value}")
        return value

    def number(self, field: str, default: Any = ...) -> float:
        value = self.get(field, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
                or value == float("inf"):
            raise self.fail(field, f"must be a finite non-negative number, not {value!r}")
        return float(value)

    def choice(self, field: str, allowed, default: Any = ..., what: str = "") -> Any:
        """A value among `allowed` (a wrong type is refused like a wrong value)."""
        value = self.get(field, default)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) \
                or value not in allowed:
            raise self.fail(field, f"unknown {what or field} {value!r}; allowed: "
                                   f"{', '.join(map(str, allowed))}")
        return value

    def list(self, field: str, default: Any = ...) -> list:
        """A list (a mapping or a scalar where a list belongs is refused, naming the field)."""
        value = self.get(field, default)
        if not isinstance(value, (list, tuple)):
            raise self.fail(field, f"must be a list, not {value!r}")
        return list(value)

    def name(self, field: str = "name") -> str:
        """A name that becomes file and directory names (and SystemVerilog identifiers): 1-64
        letters, digits or _ . + -, not starting with a dot (no '..', no hidden files)."""
        value = self.get(field)
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,63}",
                                                          value):
            raise self.fail(field, f"must be 1-64 letters, digits or _ . + - (not starting "
                                   f"with a dot), not {value!r}")
        return value

    def check_known(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                raise ConfigError(f"{self.where}: unknown field '{key}'; "
                                  f"allowed: {', '.join(allowed)}")


_FIELDS = ("name", "clock_mhz", "buses", "vector_width", "registers", "bool_registers",
           "short_imm_bits", "imem_depth", "dmem_rows", "dmem_banks", "units", "energy_pj",
           "offchip", "dmem_protection")


def _offchip(data: Any, where: str) -> OffchipConfig:
    d = OffchipConfig()
    if data is None:
        return d
    r = FieldReader(data, f"{where}: offchip")
    r.check_known(tuple(OffchipConfig.__dataclass_fields__))
    return OffchipConfig(
        bytes=r.int("bytes", 1 << 10, 1 << 32, default=d.bytes, pow2=True),
        bits_per_cycle=r.int("bits_per_cycle", 8, 1 << 16, default=d.bits_per_cycle, pow2=True),
        latency_cycles=r.int("latency_cycles", 1, 1 << 16, default=d.latency_cycles),
        read_pj_per_bit=r.number("read_pj_per_bit", default=d.read_pj_per_bit),
        write_pj_per_bit=r.number("write_pj_per_bit", default=d.write_pj_per_bit))


def parse_accel_config(data: Any, where: str = "accelerator config") -> AccelConfig:
    r = FieldReader(data, where)
    r.check_known(_FIELDS)
    width = r.int("vector_width", 64, 4096, pow2=True)
    clock = r.number("clock_mhz")
    if clock <= 0:
        raise r.fail("clock_mhz", f"must be > 0, not {clock}")

    raw_units = r.get("units")
    if not isinstance(raw_units, list):
        raise r.fail("units", f"must be a list of units, not {raw_units!r}")
    units, seen = [], set()
    for i, raw in enumerate(raw_units):
        u = FieldReader(raw if not isinstance(raw, str) else {"type": raw}, f"{where}: units[{i}]")
        u.check_known(("type", "latency"))
        kind = u.get("type")
        if kind not in OPTIONAL_UNITS:
            raise u.fail("type", f"unknown unit {kind!r}; allowed: {', '.join(OPTIONAL_UNITS)}")
        if kind in seen:
            raise u.fail("type", f"unit {kind!r} is listed twice; each unit appears at most once")
        seen.add(kind)
        units.append(UnitConfig(kind, u.int("latency", 1, 8, default=UNITS[kind].default_latency)))

    raw_energy = r.get("energy_pj")
    e = FieldReader(raw_energy, f"{where}: energy_pj")
    e.check_known(ENERGY_EVENTS)
    energy = tuple((event, e.number(event)) for event in ENERGY_EVENTS)

    name = r.name()  # it goes into generated SystemVerilog, file names and reports
    rows = r.int("dmem_rows", 2, 1 << 20, pow2=True)
    return AccelConfig(
        name=name,
        clock_mhz=clock,
        buses=r.int("buses", 1, 16),
        vector_width=width,
        registers=r.int("registers", 1, 256),
        bool_registers=r.int("bool_registers", 1, 8),
        short_imm_bits=r.int("short_imm_bits", 4, 32),
        imem_depth=r.int("imem_depth", 2, 1 << 20, pow2=True),
        dmem_rows=rows,
        units=tuple(units),
        energy_pj=energy,
        dmem_banks=r.int("dmem_banks", 1, rows, default=1, pow2=True),
        offchip=_offchip(r.get("offchip", None), where),
        dmem_protection=_protection(r),
    )


PROTECTION = {"none": 0, "parity": 1, "secded": 7}  # check bits per 32-bit word


def _protection(r: FieldReader) -> str:
    value = r.get("dmem_protection", "none")
    if value not in PROTECTION:
        raise r.fail("dmem_protection", f"{value!r}; allowed: {', '.join(PROTECTION)}")
    return value


CONFIG_DIR = Path(__file__).parent / "configs"  # configs/accel (a symlink; a copy in wheels)


def load_accel_config(path: str | Path) -> AccelConfig:
    """Load a config file; a bare name such as `tiny` means `configs/accel/tiny.yaml`."""
    if not isinstance(path, (str, Path)) or not str(path).isprintable() or not str(path):
        raise ConfigError(f"accelerator {path!r}: expected a config name (such as tiny) or a "
                          f"YAML path")
    p = Path(path)
    if not p.suffix and not p.exists():
        p = CONFIG_DIR / f"{p}.yaml"
    known = ", ".join(sorted(f.stem for f in CONFIG_DIR.glob("*.yaml")))
    return parse_accel_config(read_yaml(p, f"accelerator config (shipped: {known})"), str(p))


class _UniqueKeys(yaml.SafeLoader):
    """yaml.safe_load, refusing a mapping that names one key twice (the second would win
    silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path, what: str):
    """A YAML file's data (no Python objects, no repeated keys), or one line naming the file:
    unreadable, not YAML, a key given twice (with its line)."""
    p = Path(path)
    shown = str(p) if str(p).isprintable() else repr(str(p))  # one line, whatever the name
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"{shown}: cannot read the {what} ({why})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeys)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{shown}: not valid YAML{line}: {problem}") from None
