"""Runs a command so that its whole process tree dies with the process that asked for it.

A Verilator build is a tree (verilator, make, g++, cc1plus); killing the Python process that
started it would leave the tree running and its temporary directory filling the cache. The
guard is the direct child: the kernel signals it when its parent dies (PR_SET_PDEATHSIG), and it
then kills the command's process group.

    python guard.py PARENT_PID -- command args...
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def guarded(cmd: list[str]) -> list[str]:
    """`cmd` wrapped in the guard, for subprocess.run / Popen."""
    return [sys.executable, str(Path(__file__).resolve()), str(os.getpid()), "--", *cmd]


def main(argv: list[str]) -> int:
    parent, cmd = int(argv[0]), argv[2:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the guard was armed
        return 1
    child = subprocess.Popen(cmd, start_new_session=True)

    def stop(*_):
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os._exit(1)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
