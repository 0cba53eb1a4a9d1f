"""Random wrong values in every YAML field and CLI option the project reads: each ends in one
clear line (a CodesignError, or the CLI's exit with a message), never a traceback, and nothing
is written outside the directory the test runs in."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from codesign.blockwise import load_segmentation
from codesign.experiment import load_experiment
from codesign.space import load_space
from compiler.quantspec import QuantSpec
from hw.config import load_accel_config
from hw.errors import CodesignError
from tests.clirun import run

ROOT = Path(__file__).resolve().parents[2]
WRONG = [None, -1, 0, 1.5, 10**12, "abc", "", [], {}, [1, "x"], {"a": 1}, True, "../../x",
         "a\nb", float("nan"), -0.5, [[]], "8/8", "1e-3"]

LOADERS = {  # file -> loader of that kind of YAML
    "configs/experiments/digits.yaml": load_experiment,
    "configs/experiments/fashion-bits.yaml": load_experiment,
    "configs/experiments/segmentation.yaml": load_segmentation,
    "configs/accel/tiny.yaml": load_accel_config,
    "configs/search/fashion.yaml": load_space,
    "QUANT": QuantSpec.load,
}
QUANT = {"default": {"weights": 8, "activations": 8, "scales": "per_channel"},
         "layers": {"conv*": {"weights": 2, "activations": 2}}, "act_scales": {"fc": 0.1}}


def _paths(data, prefix=()):
    """Every key path of a YAML document (mappings and list items)."""
    items = data.items() if isinstance(data, dict) else \
        enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


def _set(data, path, value):
    for k in path[:-1]:
        data = data[k]
    data[path[-1]] = value


def _one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text.strip() and "Traceback" not in text, repr(text)


@pytest.mark.parametrize("source", list(LOADERS))
def test_wrong_yaml_values_end_in_one_line(tmp_path, source):
    rng = random.Random(source)
    base = QUANT if source == "QUANT" else yaml.safe_load((ROOT / source).read_text())
    paths = list(_paths(base))
    tried = 0
    for path in paths + [rng.choice(paths) for _ in range(60)]:
        data = yaml.safe_load(yaml.safe_dump(base))
        _set(data, path, rng.choice(WRONG))
        file = tmp_path / "case.yaml"
        file.write_text(yaml.safe_dump(data))
        try:
            LOADERS[source](file)
        except CodesignError as exc:
            _one_line(exc)
        tried += 1
    assert tried >= len(paths)


COMMANDS = [  # each fails fast at a missing file after its options are read
    ["compile", "missing.py:Net", "-o", "out", "--accel", "tiny"],
    ["run", "missing_dir"],
    ["evaluate", "missing.py:Net", "--accel", "tiny"],
    ["resilience", "missing.py:Net", "--accel", "tiny", "--inputs", "missing.npy"],
    ["ensemble", "missing.py:Net", "--accel", "tiny", "--dataset", "digits"],
    ["search", "missing.yaml"],
    ["report", "missing_dir"],
    ["dashboard", "missing_dir"],
    ["accel-info", "missing.yaml"],
    ["fidelity", "--configs", "missing", "--random", "0", "--out", "fid"],
]
OPTIONS = {
    "compile": ["--quant", "--input-shape", "--calibration", "--calibrate"],
    "run": ["--input", "--random", "--seed", "--output"],
    "evaluate": ["--quant", "--fidelity", "--json", "--calibrate", "--input-shape"],
    "resilience": ["--ber", "--sites", "--engine", "--margin", "--confidence", "--injections",
                   "--images", "--stuck-at", "--layer-ber", "--labels", "--seed"],
    "ensemble": ["--members", "--images", "--engine", "--seed"],
    "search": ["--trials", "--workers", "--storage", "--run-dir"],
    "report": ["--storage"],
    "dashboard": ["--port", "--host", "--storage"],
    "accel-info": [],
    "fidelity": ["--random", "--configs"],
}
ARGS = ["-5", "0", "1.5", "abc", "", "99999", "1e-3", "1,2,x", "../../escape", "a\nb", "-1e9",
        "nan", ":", "postgresql://nobody@127.0.0.1:1/x", "weights,none", "0:99:1", "3,4"]


def test_wrong_cli_options_end_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = random.Random(0)
    before = set(ROOT.iterdir())
    cases = 0
    for _ in range(120):
        argv = list(rng.choice(COMMANDS))
        options = OPTIONS[argv[0]]
        for option in rng.sample(options, min(len(options), rng.randint(1, 3))):
            argv += [option, rng.choice(ARGS)]
        out = run(*argv)
        assert out.returncode in (1, 2), (argv, out.stdout, out.stderr)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert lines and "Traceback" not in out.stderr, (argv, out.stderr)
        cases += 1
    assert cases == 120
    assert set(ROOT.iterdir()) == before  # nothing written outside the test's directory
    assert not (tmp_path.parent / "escape").exists()
