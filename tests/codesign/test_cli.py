import subprocess
import sys

import pytest
import yaml

from hw.config import CONFIG_DIR


def run(*args):
    return subprocess.run([sys.executable, "-m", "codesign", *args], capture_output=True, text=True)


def test_accel_info_describes_a_config():
    out = run("accel-info", "tiny")
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
