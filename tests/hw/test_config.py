import pytest
import yaml

from hw.config import CONFIG_DIR, load_accel_config, parse_accel_config
from hw.errors import ConfigError


def _tiny_dict():
    return yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_shipped_configs_load(name):
    c = load_accel_config(name)
    assert c.buses >= 1 and c.lanes == c.vector_width // 8


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: d["units"].append({"type": "fpu"}),
     "units[4]: field 'type': unknown unit 'fpu'; allowed: alu, lsu, vmac, dma"),
    (lambda d: d.update(buses=0), "field 'buses': must be an integer in 1..16, not 0"),
    (lambda d: d.pop("vector_width"), "missing field 'vector_width'"),
    (lambda d: d.update(vector_width=96), "field 'vector_width': must be a power of two, not 96"),
    (lambda d: d.update(colour="red"), "unknown field 'colour'"),
    (lambda d: d["energy_pj"].pop("move"), "energy_pj: missing field 'move'"),
    (lambda d: d["units"].append({"type": "alu"}), "unit 'alu' is listed twice"),
])
def test_broken_config_names_the_field(tmp_path, edit, fragment):
    data = _tiny_dict()
    edit(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_accel_config(path)
    message = str(info.value)
    assert fragment in message and str(path) in message
    assert "\n" not in message


def test_missing_file_lists_shipped_configs(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the accelerator config.*tiny"):
        load_accel_config(tmp_path / "nope.yaml")


def test_hardware_hash_ignores_energy_and_clock():
    a = parse_accel_config(_tiny_dict())
    d = _tiny_dict()
    d["clock_mhz"] = 500
    d["energy_pj"]["move"] = 9.0
    assert parse_accel_config(d).hardware_hash() == a.hardware_hash()
    d["buses"] = 4
    assert parse_accel_config(d).hardware_hash() != a.hardware_hash()


def test_a_wheel_ships_the_configs(tmp_path):
    """A non-editable install finds `tiny` and the demo: configs/ travels as package data."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(root)], check=True)
    names = set(zipfile.ZipFile(next(tmp_path.glob("codesign-*.whl"))).namelist())
    shipped = {f"hw/configs/{p.name}" for p in (root / "configs" / "accel").glob("*.yaml")}
    shipped |= {f"codesign/configs/{p.relative_to(root / 'configs')}"
                for p in (root / "configs").rglob("*.yaml")}
    assert "hw/configs/tiny.yaml" in shipped and shipped <= names
