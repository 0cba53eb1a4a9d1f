"""Bad input ends in one clear line that names the file, field, option or value at fault, with
no traceback and nothing already computed lost. The CLI runs in-process."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os

import numpy as np
import pytest
import yaml

from codesign.evalcache import EvalCache
from hw.config import CONFIG_DIR
from tests.clirun import run

NET_PY = '''
import sys
import torch
from torch import nn


class Net(nn.Module):
    input_shape = (1, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class Exits(nn.Module):
    input_shape = (1, 8, 8)

    def __init__(self):
        super().__init__()
        sys.exit()


class Recurrent(nn.Module):
    input_shape = (1, 8, 8)

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(x[:, 0])[0]
'''


def cli(*argv) -> tuple[int, str]:
    """(exit status, the error text) of one in-process command."""
    out = run(*argv)
    return out.returncode, out.stderr


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("errors")
    (d / "net.py").write_text(NET_PY)
    assert cli("compile", f"{d}/net.py:Net", "--accel", "tiny", "-o", d / "comp")[0] == 0
    return d


@pytest.mark.parametrize("argv, message", [
    (("run", "{d}/comp", "--input", "{d}/missing.npy"), "--input {d}/missing.npy: no such file"),
    (("run", "{d}/comp", "--input", "{d}/nhwc.npy"),
     "shape (1, 8, 8, 1), expected (N, 1, 8, 8) in the model's (C, H, W) layout"),
    (("run", "{d}/comp", "--input", "{d}/text.npy"), "not a numpy .npy array file"),
    (("compile", "{d}/net.py:Net", "--accel", "tiny", "-o", "{d}/c", "--calibration",
      "{d}/nan.npy"), "--calibration {d}/nan.npy: holds NaN or infinite values"),
    (("compile", "{d}/net.py:Net", "--accel", "tiny", "-o", "{d}/c", "--calibrate", "0"),
     "--calibrate 0: give at least 1 input"),
    (("compile", "{d}/net.py:Net", "--accel", "tiny", "-o", "{d}/net.py"),
     "output directory {d}/net.py: is a file, not a directory"),
    (("compile", "{d}/net.py:Exits", "--accel", "tiny", "-o", "{d}/c"),
     "net.py:Exits(): called sys.exit(None)"),
    (("compile", "{d}/net.py:Recurrent", "--accel", "tiny", "-o", "{d}/c"),
     "recurrent layers are not supported (codesign compiles feed-forward networks): lstm"),
    (("validate-accel", "tiny", "--programs", "-5"), "--programs -5: give 0 or more"),
    (("search", "--storage", "bogus://x", "--run-dir", "{d}/s"),
     "storage 'bogus://x': cannot open it (NoSuchModuleError"),
    (("search", "--trials", "1", "--run-dir", "{d}/net.py"),
     "--run-dir {d}/net.py: is a file, not a directory"),
    (("accel-info", "{d}/newline.yaml"), "field 'name': must be 1-64 letters, digits"),
    pytest.param(("fidelity", "--configs", "{d}/crumb.yaml", "--random", "0", "--out", "{d}/f"),
                 "no network of the zoo or the 0 random candidates compiles for",
                 marks=pytest.mark.slow),  # tries every zoo network: 12 s
    (("run", "{d}/hung"), "program did not halt within"),
])
def test_bad_input_is_one_clear_line(work, argv, message):
    d = work
    np.save(d / "nhwc.npy", np.zeros((1, 8, 8, 1), np.float32))
    np.save(d / "nan.npy", np.full((2, 1, 8, 8), np.nan, np.float32))
    (d / "text.npy").write_text("not numpy")
    tiny = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
    (d / "newline.yaml").write_text(yaml.safe_dump(dict(tiny, name="ti\nny")))
    (d / "crumb.yaml").write_text(yaml.safe_dump(dict(
        tiny, name="crumb", dmem_rows=8, units=[u for u in tiny["units"] if u["type"] != "dma"])))
    _hung(d)
    code, text = cli(*(a.format(d=d) for a in argv))
    assert code != 0 and message.format(d=d) in one_line(text), text
    assert not (d / "s").exists()  # nothing written for a bad search argument


def _hung(d):
    """A compiled directory whose program never halts (edited on purpose: hashes updated)."""
    import shutil

    from hw.asm import assemble
    from hw.config import load_accel_config
    from hw.isa import Encoding
    if (d / "hung").exists():
        return
    shutil.copytree(d / "comp", d / "hung")
    h = d / "hung"
    text = (h / "program.s").read_text().replace("0 -> ctrl.halt", "nop")
    (h / "program.s").write_text(text)
    program = assemble(text, Encoding(load_accel_config(h / "accel.yaml")))
    (h / "program.bin").write_bytes(program.harness_words().tobytes())
    man = json.loads((h / "manifest.json").read_text())
    for name in ("program.s", "program.bin"):
        man["files"][name] = hashlib.sha256((h / name).read_bytes()).hexdigest()
    (h / "manifest.json").write_text(json.dumps(man))


def test_a_bogus_verilator_root_is_named(monkeypatch):
    monkeypatch.setenv("CODESIGN_VERILATOR_ROOT", "/nonexistent")
    from hw.build import lint
    from hw.config import load_accel_config
    from hw.errors import SimulationError
    with pytest.raises(SimulationError, match="CODESIGN_VERILATOR_ROOT=/nonexistent: no bin/"):
        lint(load_accel_config("tiny"))


def test_duplicate_objectives_are_rejected():
    from codesign.experiment import parse_search
    from codesign.train import TrainConfig
    from hw.errors import ConfigError
    with pytest.raises(ConfigError, match="lists an objective twice"):
        parse_search({"objectives": ["accuracy", "accuracy"], "space": "digits"}, "x.yaml",
                     TrainConfig())


def test_a_corrupt_cache_is_moved_aside_and_started_anew(tmp_path):
    path = tmp_path / "evaluations.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    said = []
    cache = EvalCache(path, warn=said.append)
    cache.put("k", {"cycles": 1})
    assert cache.get("k") == {"cycles": 1}
    assert said and "corrupt" in said[0] and str(path) in said[0]
    assert len(list(tmp_path.glob("evaluations.sqlite.corrupt-*"))) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only directories")
def test_a_read_only_cache_goes_on_without_it(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    said = []
    cache = EvalCache(tmp_path / "ro" / "evaluations.sqlite", warn=said.append)
    cache.put("k", {"cycles": 1})  # no exception: the caller keeps its result
    assert cache.get("k") is None and "--no-cache" in said[0]


def test_a_failing_write_keeps_the_result_and_says_so(tmp_path):
    """A full disk (here: a database made read-only under the connection) loses no result."""
    said = []
    cache = EvalCache(tmp_path / "e.sqlite", warn=said.append)
    cache.db.execute("PRAGMA query_only = ON")
    value = {"cycles": 7}
    cache.put("k", value)
    assert value == {"cycles": 7} and "cannot be used" in said[0] and "e.sqlite" in said[0]
    assert cache.get("k") is None  # disabled from then on, no error


def test_an_entry_of_another_shape_is_a_miss(tmp_path):
    said = []
    cache = EvalCache(tmp_path / "e.sqlite", warn=said.append)
    for key, text in (("k", "{broken"), ("l", "[1, 2]")):  # entries this user wrote
        cache.db.execute("INSERT INTO costs VALUES (?, ?, 0)",
                         (key, f"{cache._mac(key, text)}\n{text}"))
    assert cache.get("k") is None and "unreadable" in said[0]
    assert cache.get("l") is None  # valid JSON, but not a mapping


def _open_at_once_and_put(path, key, barrier):
    said = []
    barrier.wait()
    cache = EvalCache(path, warn=said.append)
    cache.put(key, {"cycles": 1})
    cache.close()
    raise SystemExit(1 if said else 0)


def test_processes_that_create_the_cache_at_once_all_use_it(tmp_path):
    # Switching a new database to WAL answers "locked" at once to the second of two processes
    # that open it together; before the retry, 25 of 30 such pairs went on without the cache.
    ctx = multiprocessing.get_context("fork")
    for attempt in range(8):
        path = tmp_path / f"{attempt}.sqlite"
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=_open_at_once_and_put, args=(path, key, barrier))
                 for key in ("a", "b")]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0], "a process went on without the cache"
        cache = EvalCache(path)
        assert cache.db.execute("SELECT COUNT(*) FROM costs").fetchone()[0] == 2
        cache.close()
