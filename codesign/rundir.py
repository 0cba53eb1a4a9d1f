"""A search's run directory: one experiment's, never another's, and written only inside itself.

A directory that holds another experiment's config.yaml is refused (with --force the run goes
to a new subdirectory of it); nothing in a run directory is a symbolic link (a link would let a
report or a model file land anywhere), which is checked before a run writes there.
"""

from __future__ import annotations

import time
from pathlib import Path

from codesign.errors import CodesignError

CONFIG = "config.yaml"


def refuse_links(run_dir: Path) -> None:
    """One line naming the first symbolic link inside `run_dir` (itself may be one)."""
    if not run_dir.is_dir():
        return
    for path in sorted(run_dir.rglob("*")):
        if path.is_symlink():
            raise CodesignError(f"{path}: is a symbolic link; a run directory holds its files "
                                f"itself (remove it, or give another --run-dir)")


def claim(run_dir: Path, config_text: str, force: bool = False) -> Path:
    """The directory this run writes to: `run_dir` when it is new, empty or already this
    experiment's (the same resolved config: the run goes on in its study); with `force`, a new
    subdirectory when it holds another experiment's; else one line saying why not."""
    held = run_dir / CONFIG
    if held.is_file() and held.read_text() != config_text:
        if not force:
            raise CodesignError(f"{run_dir}: holds another search's {CONFIG}; give a new "
                                f"--run-dir, --resume it, or --force (a new subdirectory)")
        run_dir = run_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    elif not held.is_file() and run_dir.is_dir() and any(
            (run_dir / n).exists() for n in ("study.db", "models", "report.md")):
        if not force:
            raise CodesignError(f"{run_dir}: holds a search's results but no {CONFIG}; give a "
                                f"new --run-dir or --force (a new subdirectory)")
        run_dir = run_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    refuse_links(run_dir)
    return run_dir
