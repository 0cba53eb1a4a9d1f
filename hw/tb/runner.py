"""Builds one function unit with cocotb's Python runner (Verilator) and runs its testbench."""

from __future__ import annotations

import os
from pathlib import Path

from hw.build import (RTL_DIR, VERILATOR_MAKEFLAGS, VMAC_SOURCES, verilator_root,
                      write_headers)
from hw.config import AccelConfig
from hw.errors import SimulationError

WRAPPER_DIR = Path(__file__).resolve().parent.parent / "bin"

# Parameters each unit's RTL takes (the ALU is width-independent); unit u's RTL is
# rtl/tta_<u>.sv and its bench hw/tb/<u>_tb.py.
_UNIT_PARAMS = {"alu": ("LAT",), "lsu": ("LAT", "W", "ROW_AW"), "vmac": ("LAT", "W", "ROW_AW"),
                "dma": ("W", "ROW_AW", "LATENCY", "CPR")}
BENCHES = {unit: (("tta_pipe.sv", *(VMAC_SOURCES if unit == "vmac" else (f"tta_{unit}.sv",))),
                  f"hw.tb.{unit}_tb") for unit in _UNIT_PARAMS}


def run_unit_bench(unit: str, config: AccelConfig, build_dir: Path,
                   parameters: dict[str, int] | None = None) -> tuple[int, int]:
    """Run the unit's cocotb bench; returns (tests, failures)."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    if unit not in BENCHES:
        raise SimulationError(f"no cocotb bench for unit {unit!r}; benches: {', '.join(BENCHES)}")
    sources, module = BENCHES[unit]
    # cocotb finds `verilator` on PATH and parses its --version: use the wrapper.
    os.environ["PATH"] = f"{WRAPPER_DIR}{os.pathsep}{os.environ['PATH']}"
    os.environ.setdefault("VERILATOR_ROOT", str(verilator_root()))
    # cocotb runs make itself: the precompiled-header fix of hw/build.py through make's
    # environment (a vector unit of several modules is split into several files).
    os.environ["MAKEFLAGS"] = " ".join(VERILATOR_MAKEFLAGS[1:])
    include = build_dir / "include"
    write_headers(config, include)
    defaults = {"W": config.vector_width, "LAT": config.latency(unit), "ROW_AW": 8,
                "LATENCY": config.offchip.latency_cycles,
                "CPR": config.offchip.cycles_per_row(config.vector_width)}
    params = {k: v for k, v in {**defaults, **(parameters or {})}.items()
              if k in _UNIT_PARAMS[unit]}
    runner = get_runner("verilator")
    toplevel = f"tta_{unit}"
    runner.build(sources=[RTL_DIR / s for s in sources], includes=[include], hdl_toplevel=toplevel,
                 parameters=params, build_dir=build_dir, build_args=["-Wno-fatal"], always=True,
                 log_file=build_dir / "build.log")
    results = runner.test(hdl_toplevel=toplevel, test_module=module, build_dir=build_dir,
                          parameters=params, log_file=build_dir / "test.log")
    return get_results(Path(results))
