"""A compiled directory is data: it round-trips, every file is checked against the manifest,
and nothing in it can run code when it is loaded."""

import json
import os

import numpy as np
import pytest
import torch

from compiler import artifacts
from compiler.errors import CompileError
from compiler.frontend import export
from compiler.pipeline import compile_model
from compiler.serialize import CLASSES, from_data, to_data
from compiler.zoo import ZOO, build
from hw.config import load_accel_config


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    entry = next(e for e in ZOO if e.name == "mixed")
    model = build(entry)
    example = torch.randn(1, *entry.input_shape)
    net = compile_model(model, example, load_accel_config("default"), entry.quant)
    d = artifacts.save(net, tmp_path_factory.mktemp("c") / "out", export(model, example))
    return net, d, example.numpy()


def copy(d, tmp_path):
    import shutil
    return shutil.copytree(d, tmp_path / "copy")


def rehash(d, name):
    """What someone editing a file on purpose would do: the manifest made to agree."""
    man = json.loads((d / "manifest.json").read_text())
    man["files"][name] = artifacts._sha256(d / name)
    (d / "manifest.json").write_text(json.dumps(man))


def test_round_trip_gives_the_same_network(compiled):
    net, d, x = compiled
    again = artifacts.load(d)
    assert [layer.name for layer in again.layers] == [layer.name for layer in net.layers]
    assert all(again.program.layers[n].layer is layer for n, layer in
               ((layer.name, layer) for layer in again.layers))
    for a, b in zip(net.layers, again.layers):
        assert np.array_equal(getattr(a, "weight", 0), getattr(b, "weight", 0))
    with net.runner("reference") as r1, again.runner("reference") as r2:
        assert np.array_equal(r1(x), r2(x))
    assert not list(d.glob("*.pkl"))


@pytest.mark.parametrize("name", artifacts.FILES)
def test_a_truncated_or_grown_file_is_refused_by_name(compiled, tmp_path, name):
    d = copy(compiled[1], tmp_path)
    data = (d / name).read_bytes()
    (d / name).write_bytes(data[:len(data) // 2] if data else b"\0")  # offchip.bin: empty
    with pytest.raises(CompileError, match=f"{name}: its content differs from the manifest"):
        artifacts.load(d)


def test_stored_data_cannot_name_a_class_to_build(compiled, tmp_path):
    d = copy(compiled[1], tmp_path)
    ir = json.loads((d / "layers.json").read_text())
    ir["layers"][0]["__class__"] = "Popen"
    (d / "layers.json").write_text(json.dumps(ir))
    rehash(d, "layers.json")
    with pytest.raises(CompileError, match="unknown class 'Popen'"):
        artifacts.load(d)


def test_pickled_arrays_are_refused(compiled, tmp_path):
    d = copy(compiled[1], tmp_path)
    marker = tmp_path / "ran"
    evil = np.empty(1, object)
    evil[0] = _Evil(str(marker))
    np.savez(d / "arrays.npz", a0=evil)  # numpy pickles object arrays
    rehash(d, "arrays.npz")
    with pytest.raises(CompileError, match="arrays.npz: not a data-only npz"):
        artifacts.load(d)
    assert not marker.exists()


def test_an_exported_program_holding_objects_is_refused_unrun(tmp_path):
    from torch._export.serde import serialize
    import io
    marker = tmp_path / "ran"
    buf = io.BytesIO()
    torch.save({"x": _Evil(str(marker))}, buf)
    with artifacts._tensors_only():
        with pytest.raises(CompileError, match="objects other than tensors"):
            serialize.deserialize_torch_artifact(buf.getvalue())
    assert not marker.exists()


def test_only_listed_classes_are_stored():
    class Other:
        pass
    with pytest.raises(CompileError, match="cannot store a Other"):
        to_data(Other(), {})
    assert from_data(to_data((1, [2.5, "x"], {"k": None}), {}), {}, "w") == (1, [2.5, "x"],
                                                                             {"k": None})
    assert "LayerBinding" in CLASSES and "Conv2d" in CLASSES


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def test_a_truncated_manifest_is_one_clear_error(compiled, tmp_path):
    d = copy(compiled[1], tmp_path)
    text = (d / "manifest.json").read_text()
    (d / "manifest.json").write_text(text[:len(text) // 2])
    with pytest.raises(CompileError, match="manifest.json: unreadable .*compile again"):
        artifacts.load(d)
