import json
import subprocess
import sys

import pytest
import yaml

from hw.config import CONFIG_DIR
from tests.clirun import run


def test_accel_info_describes_a_config():  # the one command run as its own process
    out = subprocess.run([sys.executable, "-m", "codesign", "accel-info", "tiny"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "accelerator 'tiny': 3 buses, W = 64 bits (8 int8 lanes)" in out.stdout


def test_broken_config_is_one_clear_line(tmp_path):
    data = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
    data["buses"] = 0
    path = tmp_path / "zero.yaml"
    path.write_text(yaml.safe_dump(data))
    out = run("accel-info", str(path))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: {path}: field 'buses': must be an integer in 1..16, not 0"]


def test_broken_experiment_names_the_field(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: x\ndataset: imagenet\n")
    out = run("demo", "--config", str(path))
    assert out.returncode == 2
    assert "field 'dataset': unknown data set 'imagenet'; allowed: digits" in out.stderr


@pytest.mark.rtl
@pytest.mark.slow
def test_validate_accel_reports_peaks():
    out = run("validate-accel", "tiny", "--programs", "30")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "random programs, RTL vs golden model: 30/30 identical" in out.stdout
    assert "binary" in out.stdout and "result: OK" in out.stdout
    lines = {line.split()[0]: line.split() for line in out.stdout.splitlines()
             if line.split() and line.split()[0] in ("int8", "ternary", "binary")}
    assert [float(lines[p][1]) for p in ("int8", "ternary", "binary")] == [8.0, 32.0, 64.0]


MODEL_PY = '''
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    input_shape = (2, 12, 12)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.body = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.fc = nn.Linear(16 * 6 * 6, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = F.max_pool2d(x + self.body(x), 2)
        return self.fc(torch.flatten(x, 1))


class Spectral(nn.Module):
    input_shape = (1, 4, 4)

    def forward(self, x):
        return torch.fft.fft2(x).real
'''


@pytest.mark.slow
@pytest.mark.rtl
def test_compile_then_run_with_check(tmp_path):
    (tmp_path / "net.py").write_text(MODEL_PY)
    (tmp_path / "q.yaml").write_text("layers:\n  body: {weights: 2, activations: 8}\n")
    out = run("compile", f"{tmp_path}/net.py:Net", "--accel", "default", "--quant",
              str(tmp_path / "q.yaml"), "-o", str(tmp_path / "out"))
    assert out.returncode == 0, out.stdout + out.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    layers = {entry["name"]: entry for entry in manifest["layers"]}
    assert layers["body"]["weight_bits"] == 2 and layers["conv"]["weight_bits"] == 8
    assert {e["kind"] for e in manifest["layers"]} == {"conv2d", "add", "pool", "dense"}
    assert manifest["expected_cycles"] == sum(e["expected_cycles"] for e in manifest["layers"])
    assert "body:" in (tmp_path / "out" / "program.s").read_text()  # labelled per layer
    out = run("run", str(tmp_path / "out"), "--random", "2", "--check")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{manifest['expected_cycles']} cycles" in out.stdout
    assert "2 inputs bit-exact against the integer reference" in out.stdout
    # Corrupt the weights the RTL loads: the manifest's hash refuses the file ...
    image = bytearray((tmp_path / "out" / "dmem.bin").read_bytes())
    image[:64] = bytes(255 - b for b in image[:64])
    (tmp_path / "out" / "dmem.bin").write_bytes(bytes(image))
    out = run("run", str(tmp_path / "out"), "--random", "1", "--check")
    assert out.returncode == 2 and "dmem.bin: its content differs" in out.stderr + out.stdout
    # ... and edited on purpose (hash updated), --check names the first layer that differs.
    import hashlib
    manifest["files"]["dmem.bin"] = hashlib.sha256(bytes(image)).hexdigest()
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(manifest))
    out = run("run", str(tmp_path / "out"), "--random", "1", "--check")
    assert out.returncode == 1
    assert "MISMATCH input 0, layer conv:" in out.stdout


@pytest.mark.rtl
def test_compile_an_exported_program(tmp_path):
    import torch

    (tmp_path / "net.py").write_text(MODEL_PY)
    from compiler.artifacts import load_model
    model, shape = load_model(f"{tmp_path}/net.py:Net")
    torch.export.save(torch.export.export(model, (torch.zeros(1, *shape),)),
                      str(tmp_path / "net.pt2"))
    out = run("compile", str(tmp_path / "net.pt2"), "--accel", "default", "-o",
              str(tmp_path / "out"))
    assert out.returncode == 0, out.stdout + out.stderr
    out = run("run", str(tmp_path / "out"), "--random", "1", "--check")
    assert out.returncode == 0, out.stdout + out.stderr


def test_an_op_nothing_can_run_is_named_with_its_line(tmp_path):
    (tmp_path / "net.py").write_text(MODEL_PY)
    out = run("compile", f"{tmp_path}/net.py:Spectral", "-o", str(tmp_path / "out"))
    assert out.returncode == 2
    line = MODEL_PY.splitlines().index("        return torch.fft.fft2(x).real") + 1
    assert "fft" in out.stderr
    assert f'File "{tmp_path}/net.py", line {line}, in forward' in out.stderr


def test_bad_model_arguments_are_clear(tmp_path):
    (tmp_path / "net.py").write_text(MODEL_PY)
    out = run("compile", f"{tmp_path}/net.py:Nett", "-o", str(tmp_path / "out"))
    assert out.returncode == 2
    assert "no 'Nett' (nn.Module classes there: Net, Spectral)" in out.stderr
    (tmp_path / "q.yaml").write_text("default: {weights: 3}\n")
    out = run("compile", f"{tmp_path}/net.py:Net", "--quant", str(tmp_path / "q.yaml"),
              "-o", str(tmp_path / "out"))
    assert out.returncode == 2
    assert f"{tmp_path}/q.yaml: default.weights: 3 bits; allowed: 1, 2, 8" in out.stderr
