"""Area model: each config's core synthesized by Yosys to generic gates, counted per unit.

The memories (tta_mem) are read as black boxes and reported in bits, not gates. Gate
equivalents are an estimate: static-CMOS transistors of each generic cell / 4 (a NAND2 has 4).
One hierarchical synthesis per config; the result is cached by the config's build key.
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

from hw.build import CORE_SOURCES, RTL_DIR, build_key, cache_root, write_headers
from hw.config import AccelConfig
from hw.errors import SimulationError
from hw.isa import Encoding

# Transistors of Yosys' generic cells in static CMOS; flip-flops of every flavour count 24.
TRANSISTORS = {"$_NOT_": 2, "$_NAND_": 4, "$_NOR_": 4, "$_AND_": 6, "$_OR_": 6, "$_ANDNOT_": 6,
               "$_ORNOT_": 6, "$_XOR_": 12, "$_XNOR_": 12, "$_MUX_": 12, "$_BUF_": 4}
FLIP_FLOP = 24
UNIT_MODULES = {"alu": "tta_alu", "lsu": "tta_lsu", "vmac": "tta_vmac"}


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


def synthesize(config: AccelConfig) -> AreaReport:
    with tempfile.TemporaryDirectory() as tmp:
        include, out = Path(tmp), Path(tmp) / "stat.txt"
        write_headers(config, include)
        logic = " ".join(str(RTL_DIR / s) for s in CORE_SOURCES if s != "tta_mem.sv")
        script = (f"read_verilog -sv -lib {RTL_DIR / 'tta_mem.sv'}; "
                  f"read_verilog -sv -I{include} {logic}; synth -top tta_core; "
                  f"tee -q -o {out} stat")
        proc = subprocess.run([yosys(), "-q", "-p", script], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SimulationError(f"yosys failed on accelerator '{config.name}': "
                                  f"{proc.stderr.strip()[-800:]}")
        sections = _sections(out.read_text())
    units = {}
    for unit, module in UNIT_MODULES.items():
        name = next((s for s in sections if re.search(rf"(^|\\){module}(\\|$)", s)), None)
        if name:
            units[unit] = _area(name, sections)
    own = {k: v for k, v in sections["tta_core"].items() if k.startswith("$_")}
    units["core"] = _area("tta_core", {"tta_core": own})
    memory = {"imem": config.imem_depth * Encoding(config).width,
              "dmem": config.dmem_rows * config.vector_width}
    return AreaReport(units, memory)


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
        return AreaReport({k: Area(**v) for k, v in data["units"].items()}, data["memory_bits"])
    report = synthesize(config)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"units": {k: asdict(v) for k, v in report.units.items()},
                                 "memory_bits": report.memory_bits}))
    return report
