"""Area model: each config's core synthesized by Yosys to generic gates, counted per unit.

The memories (tta_mem) are read as black boxes and reported in bits, not gates. Gate
equivalents are an estimate: static-CMOS transistors of each generic cell / 4 (a NAND2 has 4).
The core (ALU, LSU, decode, buses, registers, counters) is synthesized at the config with the
vector unit as a black box; the vector unit on its own, whole and hierarchically: its columns of
accumulator lanes, post-processing groups and dot lanes are identical instances, which Yosys
synthesizes once each and `stat` counts per instance (no flattening, no extrapolation). Results
are cached by config and sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from hw.build import (CORE_SOURCES, RTL_DIR, VMAC_SOURCES, build_key, cache_root, ops_header,
                      write_headers)
from hw.config import AccelConfig
from hw.errors import SimulationError
from hw.isa import Encoding, bits_for
from hw.units import OPTIONAL_UNITS

# Transistors of Yosys' generic cells in static CMOS; flip-flops of every flavour count 24.
TRANSISTORS = {"$_NOT_": 2, "$_NAND_": 4, "$_NOR_": 4, "$_AND_": 6, "$_OR_": 6, "$_ANDNOT_": 6,
               "$_ORNOT_": 6, "$_XOR_": 12, "$_XNOR_": 12, "$_MUX_": 12, "$_BUF_": 4}
FLIP_FLOP = 24
UNIT_MODULES = {u: f"tta_{u}" for u in OPTIONAL_UNITS}  # unit u's RTL: rtl/tta_<u>.sv
VMAC_FLOW = "synth -top tta_vmac"  # hierarchical: each distinct submodule synthesized once


@dataclass(frozen=True)
class Area:
    cells: int
    gate_equivalents: float


@dataclass(frozen=True)
class AreaReport:
    units: dict[str, Area]  # alu, lsu, vmac, and `core` (decode, buses, registers, counters)
    memory_bits: dict[str, int]  # imem, dmem

    @property
    def total(self) -> Area:
        return Area(sum(a.cells for a in self.units.values()),
                    sum(a.gate_equivalents for a in self.units.values()))


def yosys() -> str:
    exe = os.environ.get("CODESIGN_YOSYS") or shutil.which("yosys")
    if not exe:
        raise SimulationError("yosys not found: run `make` (installs Debian's yosys) or set "
                              "CODESIGN_YOSYS")
    return exe


def _sections(stat: str) -> dict[str, dict[str, int]]:
    """Cell counts per module of a hierarchical `stat`; submodule instances are cells too."""
    out, current = {}, None
    for line in stat.splitlines():
        if m := re.match(r"^=== (.+) ===$", line):
            current = out.setdefault(m.group(1), {})
        elif current is not None and (m := re.match(r"^\s{5}(\S+)\s+(\d+)$", line)):
            current[m.group(1)] = int(m.group(2))
        elif line.startswith("=== design hierarchy"):
            break
    return out


def _area(module: str, sections: dict[str, dict[str, int]]) -> Area:
    cells, transistors = 0, 0.0
    for cell, n in sections.get(module, {}).items():
        if cell.startswith("$_"):
            cells += n
            transistors += n * TRANSISTORS.get(cell, FLIP_FLOP if "DFF" in cell else 8)
        else:  # a submodule instance (black-box memories have no section and count nothing)
            sub = _area(cell, sections)
            cells += n * sub.cells
            transistors += n * sub.gate_equivalents * 4
    return Area(cells, transistors / 4)


def _yosys(script: str, what: str) -> dict[str, dict[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stat.txt"
        proc = subprocess.run([yosys(), "-q", "-p", f"{script}; tee -q -o {out} stat"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SimulationError(f"yosys failed on {what}: {proc.stderr.strip()[-800:]}")
        return _sections(out.read_text())


def _find(sections: dict, module: str) -> str | None:
    return next((s for s in sections if re.search(rf"(^|\\){module}(\\|$)", s)), None)


def _synthesize_core(config: AccelConfig) -> dict[str, Area]:
    """ALU, LSU and the core's own logic at the config, the vector unit and memories as black
    boxes."""
    with tempfile.TemporaryDirectory() as tmp:
        write_headers(config, Path(tmp))
        boxes = " ".join(str(RTL_DIR / s) for s in ("tta_mem.sv", "tta_vmac.sv"))
        logic = " ".join(str(RTL_DIR / s) for s in CORE_SOURCES
                         if s != "tta_mem.sv" and s not in VMAC_SOURCES)
        sections = _yosys(f"read_verilog -sv -lib -I{tmp} {boxes}; "
                          f"read_verilog -sv -I{tmp} {logic}; synth -top tta_core",
                          f"accelerator '{config.name}'")
    units = {unit: _area(name, sections) for unit, module in UNIT_MODULES.items()
             if unit != "vmac" and (name := _find(sections, module))}
    own = {k: v for k, v in sections["tta_core"].items() if k.startswith("$_")}
    units["core"] = _area("tta_core", {"tta_core": own})
    return units


def _synthesize_vmac(config: AccelConfig) -> Area:
    """The vector unit alone, whole (its submodules synthesized once each), cached."""
    width = config.vector_width
    row_aw = bits_for(config.dmem_rows)  # as the core instantiates it (DMEM_AW)
    rules = json.dumps([VMAC_FLOW, TRANSISTORS, FLIP_FLOP])  # what the figures depend on
    sources = ("tta_pipe.sv", *VMAC_SOURCES)
    key = hashlib.sha256(b"".join((RTL_DIR / s).read_bytes() for s in sources)
                         + rules.encode() + ops_header().encode()
                         + f"{width}:{config.latency('vmac')}:{row_aw}".encode()).hexdigest()[:20]
    cache = cache_root().parent / "area" / f"vmac-{key}.json"
    if cache.exists():
        return Area(**json.loads(cache.read_text()))
    with tempfile.TemporaryDirectory() as tmp:
        write_headers(config, Path(tmp))
        files = " ".join(str(RTL_DIR / s) for s in sources)
        sections = _yosys(f"read_verilog -sv -I{tmp} {files}; chparam -set W {width} -set "
                          f"ROW_AW {row_aw} -set LAT {config.latency('vmac')} tta_vmac; "
                          f"{VMAC_FLOW}", f"the vector unit at W = {width}")
    result = _area(_find(sections, "tta_vmac"), sections)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(asdict(result)))
    return result


def synthesize(config: AccelConfig) -> AreaReport:
    units = _synthesize_core(config)
    if config.has_unit("vmac"):
        units["vmac"] = _synthesize_vmac(config)
    return AreaReport(units, memory_bits(config))


SRAM_GE_PER_BIT = 1.5  # a memory bit as a 6-transistor cell (periphery not counted)


def total_ge(report: AreaReport) -> float:
    """One figure for a config: its logic plus its memories' bit cells, in gate equivalents."""
    return report.total.gate_equivalents + SRAM_GE_PER_BIT * sum(report.memory_bits.values())


def memory_bits(config: AccelConfig) -> dict[str, int]:
    """Bits of the memories, the data memory's check bits included (not cached with the
    logic: protection does not change the RTL)."""
    return {"imem": config.imem_depth * Encoding(config).width,
            "dmem": round(config.dmem_rows * config.vector_width * config.dmem_bit_overhead)}


def _cache_path(config: AccelConfig) -> Path:
    model = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]  # this file's rules
    return cache_root().parent / "area" / f"{build_key(config)}-{model}.json"


def area_cached(config: AccelConfig) -> bool:
    return _cache_path(config).exists()


def area(config: AccelConfig) -> AreaReport:
    """The area report of one config, from the cache or a Yosys run (slow for wide configs)."""
    cache = _cache_path(config)
    if cache.exists():
        data = json.loads(cache.read_text())
        return AreaReport({k: Area(**v) for k, v in data["units"].items()}, memory_bits(config))
    report = synthesize(config)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"units": {k: asdict(v) for k, v in report.units.items()},
                                 "memory_bits": report.memory_bits}))
    return report
