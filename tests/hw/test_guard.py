"""A guarded command's whole process tree dies with the process that started it (a killed
search must not leave a Verilator build running)."""

import subprocess
import sys
import time
from pathlib import Path

PARENT = """
import subprocess, sys, time
sys.path.insert(0, {root!r})
from hw.guard import guarded
subprocess.Popen(guarded(["bash", "-c", "sleep 321 & sleep 321; wait"]))
print("started", flush=True)
time.sleep(120)
"""


def _sleepers() -> int:
    return subprocess.run(["pgrep", "-x", "sleep", "-a"], capture_output=True,
                          text=True).stdout.count("sleep 321")


def test_the_tree_dies_with_its_parent():
    root = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(root=root)],
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "started"
    deadline = time.time() + 10
    while _sleepers() < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert _sleepers() == 2
    parent.kill()  # as a kill -9 of a search would
    parent.wait()
    deadline = time.time() + 10
    while _sleepers() and time.time() < deadline:
        time.sleep(0.1)
    assert _sleepers() == 0
