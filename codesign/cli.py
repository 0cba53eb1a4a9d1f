"""The `codesign` command."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hw.errors import CodesignError

DEFAULT_DEMO = Path(__file__).resolve().parent.parent / "configs" / "experiments" / "demo.yaml"


def _demo(args) -> None:
    from codesign.demo import run_demo
    from codesign.experiment import load_experiment

    exp = load_experiment(args.config)
    run_dir = Path(args.run_dir or f"runs/{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_demo(exp, run_dir, args.trials)


def _accel_info(args) -> None:
    from hw.config import load_accel_config
    from hw.isa import Encoding

    c = load_accel_config(args.config)
    enc = Encoding(c)
    print(f"accelerator '{c.name}': {c.buses} buses, W = {c.vector_width} bits "
          f"({c.lanes} int8 lanes), {c.clock_mhz:g} MHz")
    print(f"  units: {', '.join(f'{n} (latency {c.latency(n)})' for n in c.unit_names)}")
    print(f"  instruction: {enc.width} bits = {c.buses} slots x {enc.slot_bits} "
          f"(guard {enc.guard_bits}, source {enc.src_bits}, destination {enc.dst_bits})")
    print(f"  memories: {c.imem_depth} instructions, {c.dmem_bytes} data bytes "
          f"({c.dmem_rows} rows)")
    print(f"  peak: {c.lanes} int8 MACs/cycle = "
          f"{2 * c.lanes * c.clock_mhz / 1e3:.1f} GOPS")


def _validate_accel(args) -> int:
    from hw.config import load_accel_config
    from hw.validate import report, validate

    v = validate(load_accel_config(args.config), programs=args.programs, with_area=args.area,
                 progress=lambda m: print(f"  {m}", flush=True))
    print(report(v))
    for m in v.mismatches[:3]:
        print(f"mismatch on random program {m.seed} ({m.what}):\n{m.program}")
    return 0 if v.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codesign", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train, compile, run on the RTL, then a short search")
    p.add_argument("--config", default=str(DEFAULT_DEMO), help="experiment YAML")
    p.add_argument("--run-dir", help="where results go (default runs/<name>-<time>)")
    p.add_argument("--trials", type=int, help="override the number of search trials")
    p.set_defaults(func=_demo)
    p = sub.add_parser("accel-info", help="validate an accelerator config and describe it")
    p.add_argument("config", help="a name under configs/accel/ or a YAML path")
    p.set_defaults(func=_accel_info)
    p = sub.add_parser("validate-accel", help="build, lint, test and measure an accelerator")
    p.add_argument("config", help="a name under configs/accel/ or a YAML path")
    p.add_argument("--programs", type=int, default=200, help="random programs to compare")
    p.add_argument("--area", action="store_true", help="synthesize the area if not cached")
    p.set_defaults(func=_validate_accel)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except CodesignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
