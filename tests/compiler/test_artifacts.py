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
    d = artifacts.save(net, tmp_path_factory.mktemp("c") / "out")
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


def test_no_file_is_an_archive_a_loader_could_unpickle(compiled):
    d = compiled[1]
    assert not list(d.glob("*.pt2")) and not list(d.glob("*.pt"))
    for name in artifacts.FILES:  # no pickle opcode stream (b"\x80" protocol header) inside
        assert b"\x80\x04\x95" not in (d / name).read_bytes()[:64], name


def _edit_host(d, edit):
    host = json.loads((d / "host.json").read_text())
    edit(host)
    (d / "host.json").write_text(json.dumps(host))
    rehash(d, "host.json")


def _first_call(host, name):
    return next(b for b in host["bindings"] if b.get("call") == name)


@pytest.mark.parametrize("edit, error", [
    # a packed function of the runtime, by name: what would load a library or run a command
    (lambda h: _first_call(h, "relax.nn.conv2d").update(
        call="relax.call_dps_packed", args=[{"string": "runtime.ModuleLoadFromFile"}]),
     "operator 'relax.call_dps_packed' is not one a host graph may hold"),
    (lambda h: _first_call(h, "relax.nn.conv2d").update(call="relax.print"),
     "operator 'relax.print' is not one a host graph may hold"),
    (lambda h: _first_call(h, "relax.nn.conv2d").update(call="tvm.contrib.popen"),
     "operator 'tvm.contrib.popen' is not one a host graph may hold"),
    # attributes of another type than the operator's own
    (lambda h: _first_call(h, "relax.nn.conv2d")["attrs"].update(type="ffi.Function"),
     "relax.nn.conv2d's attributes must be a relax.attrs.Conv2DAttrs"),
    # a value used before it is defined, a constant the file does not hold
    (lambda h: h["bindings"][0]["args"].__setitem__(0, {"var": 99}),
     "binding 0: refers to value 99"),
    (lambda h: _first_call(h, "relax.nn.conv2d")["args"].__setitem__(1, {"const": "x"}),
     "constant 'x' is not a numeric array"),
    # a shape the operators do not agree with: types are inferred again, never trusted
    (lambda h: h["params"][0].update(shape=[1, 5, 7, 7]),
     "binding 0: its operator rejects its arguments"),
])
def test_a_crafted_host_graph_is_refused_by_name(compiled, tmp_path, edit, error):
    d = copy(compiled[1], tmp_path)
    _edit_host(d, edit)
    with pytest.raises(CompileError, match=f"host.json: .*{error}"):
        artifacts.load(d)


def test_the_host_graph_round_trips_on_every_zoo_network():
    import tvm
    from compiler.fold import fold_for_tta
    from compiler.frontend import to_relax
    from compiler.relaxdata import dump_main, load_main
    for entry in ZOO:
        model = build(entry)
        source = fold_for_tta(to_relax(export(model, torch.zeros(1, *entry.input_shape)))).mod
        arrays = {}
        data = json.loads(json.dumps(dump_main(source, arrays)))
        tvm.ir.assert_structural_equal(load_main(data, arrays, "h")["main"], source["main"],
                                       map_free_vars=True)


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


@pytest.mark.parametrize("name", artifacts.FILES)
@pytest.mark.parametrize("content", [b"", b"\x00\xff not {text", None])
def test_a_damaged_file_with_a_rewritten_hash_is_one_clear_error(compiled, tmp_path, name,
                                                                 content):
    """Someone who rewrites the manifest's hash gets no traceback either: each file is read as
    data and checked for what it must hold (or it is a memory image, whatever its bytes)."""
    from hw.errors import CodesignError
    d = copy(compiled[1], tmp_path)
    data = (d / name).read_bytes()
    (d / name).write_bytes(data[:len(data) // 2] if content is None else content)
    rehash(d, name)
    try:
        artifacts.load(d)
    except CodesignError as exc:
        assert "\n" not in str(exc).strip()
