"""Commands run in-process, as a shell would see them (exit status, stdout, stderr): the CLI
tests pay no interpreter start-up or import per command (one smoke test starts a process)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from codesign.cli import main


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


def run(*argv) -> Completed:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse, or a command's own exit with a message
            if isinstance(exc.code, str):
                err.write(exc.code + "\n")
                code = 1
            else:
                code = exc.code or 0
    return Completed(code, out.getvalue(), err.getvalue())
