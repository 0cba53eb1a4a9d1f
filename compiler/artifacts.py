"""Compiler inputs and outputs on disk: loading a MODEL argument, and the compiled directory.

MODEL is `path/to/file.py:Name` (an nn.Module class or a factory callable without required
arguments) or `file.pt2` (a `torch.export.save`d ExportedProgram of the float model).

A compiled directory holds:
  program.s       assembly, labelled per layer
  program.bin     the instruction words as the harness loads them
  dmem.bin        the data-memory image (weights, parameters; activations come at run time)
  offchip.bin     the off-chip memory image (constants the layers load with the DMA unit when
                  they do not all fit the data memory; empty otherwise)
  layers.json     the layer IR and bindings (integers and scales of every accelerator layer;
  arrays.npz      data only: `compiler.serialize`), their arrays
  host.json       the float network in Relax (high-level operators only, data:
  host.npz        `compiler.relaxdata`), its constants; `load` partitions it again
  accel.yaml      the accelerator config it was compiled for
  manifest.json   layers, placement, shapes, bit widths, tiling, expected cycles and the
                  SHA-256 of every other file

A compiled directory is read as data: nothing in it runs code when loaded. No file is read by a
loader that can unpickle, import or evaluate (torch's pt2 loader can do all three). The layer IR
is rebuilt only from listed classes, the host graph only from high-level Relax operators with
every type inferred again, arrays from npz files without pickles. The manifest's SHA-256 hashes
catch accidents (a truncated or half-copied file); they are no signature: whoever can edit a
file can rewrite its hash, and what keeps such a directory harmless is that it is only data.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

from compiler.errors import CompileError
from compiler.frontend import eval_mode
from compiler.kinds import CODEGEN, get_kind
from compiler.partition import partition_for_tta, placement
from compiler.convert import Conversion, insert_conversions
from compiler.relaxdata import dump_main, load_main
from compiler.program import CompiledProgram, Segment
from compiler.serialize import from_data, load_arrays, save_arrays, to_data
from hw.asm import assemble
from hw.config import AccelConfig, load_accel_config
from hw.isa import Encoding


def load_model(spec: str, input_shape: tuple[int, ...] | None = None
               ) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """(float model in eval mode, input shape without the batch axis) from a MODEL argument."""
    if spec.endswith(".pt2"):
        path = Path(spec)
        try:
            ep = torch.export.load(str(path))
        except Exception as exc:
            raise CompileError(f"{path}: not a torch.export.save'd program: {exc}") from exc
        shape = tuple(ep.example_inputs[0][0].shape[1:]) if ep.example_inputs else None
        return ep.module(), tuple(input_shape or shape or ())
    file, sep, name = spec.rpartition(":")
    if not sep or not file.endswith(".py"):
        raise CompileError(f"model {spec!r}: expected path/to/file.py:Name or file.pt2")
    path = Path(file)
    if not path.is_file():
        raise CompileError(f"model {spec!r}: no file {path}")
    module_spec = importlib.util.spec_from_file_location(f"codesign_model_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    try:
        module_spec.loader.exec_module(module)
    except SystemExit as exc:
        raise CompileError(f"{path}: importing it called sys.exit({exc.code!r})") from None
    except Exception as exc:
        raise CompileError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, name):
        names = [n for n, v in vars(module).items() if inspect.isclass(v)
                 and issubclass(v, torch.nn.Module) and v.__module__ == module.__name__]
        raise CompileError(f"{path}: no {name!r} (nn.Module classes there: "
                           f"{', '.join(names) or 'none'})")
    factory = getattr(module, name)
    try:
        model = factory()
    except TypeError as exc:
        raise CompileError(f"{path}:{name}: cannot be called without arguments: {exc}") from exc
    except SystemExit as exc:
        raise CompileError(f"{path}:{name}(): called sys.exit({exc.code!r})") from None
    except Exception as exc:
        raise CompileError(f"{path}:{name}(): failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise CompileError(f"{path}:{name}() returned {type(model).__name__}, not an nn.Module")
    shape = input_shape or getattr(model, "input_shape", None)
    if not shape:
        raise CompileError(f"{spec}: give --input-shape C,H,W (the model has no input_shape)")
    return eval_mode(model), tuple(int(d) for d in shape)


def manifest(net) -> dict:
    layers = []
    for layer in net.layers:
        b = net.program.layers[layer.name]
        entry = {"name": layer.name, "kind": layer.kind, "placement": CODEGEN,
                 "relax_function": layer.source, "in_shape": list(layer.in_shape),
                 "out_shape": list(layer.out_shape), "output": layer.out.kind,
                 "expected_cycles": b.cycles, "entry": b.entry, "macs": b.macs,
                 "mac_bits": b.mac_bits, "tiling": b.tiling}
        entry.update(get_kind(layer.kind).manifest(layer))
        layers.append(entry)
    return {
        "accelerator": net.config.name, "hardware_hash": net.config.hardware_hash(),
        "frontend": net.frontend,
        "input_shape": list(net.input_shape),
        "instructions": len(net.program.program.words),
        "expected_cycles": sum(b.cycles for b in net.program.layers.values()),
        "layers": layers,
        "runs": [{"layers": list(s.layers), "why": s.why} for s in net.program.segments],
        "placement": [{"op": p.op, "where": p.where, "layer": net._func_layer.get(p.layer, p.layer)}
                      for p in net.placement],
    }


def save(net, directory: str | Path) -> Path:
    d = writable_dir(directory, "output directory")
    prog = net.program
    _write(d / "program.s", prog.listing)
    _write(d / "program.bin", prog.program.harness_words().tobytes())
    for name, segments in (("dmem.bin", prog.image), ("offchip.bin", prog.offchip)):
        image = np.zeros(max((a + len(b) for a, b in segments), default=0), np.uint8)
        for addr, data in segments:
            image[addr:addr + len(data)] = np.frombuffer(bytes(data), np.uint8)
        _write(d / name, image.tobytes())
    arrays: dict[str, np.ndarray] = {}
    ir = to_data({"layers": net.layers, "bindings": prog.layers,
                  "func_layer": net._func_layer, "segments": prog.segments,
                  "conversions": net._conversions}, arrays)
    _write(d / "layers.json", json.dumps(ir))
    _write(d / "arrays.npz", save_arrays(arrays))
    constants: dict[str, np.ndarray] = {}
    _write(d / "host.json", json.dumps(dump_main(net._source, constants)))
    _write(d / "host.npz", save_arrays(constants))
    _write(d / "accel.yaml", yaml.safe_dump(net.config.to_dict(), sort_keys=False))
    if net.model_file:
        _write(d / TFLITE_FILE, net.model_file)
    man = manifest(net)
    man["files"] = {name: _sha256(d / name) for name in _files(net.frontend)}
    _write(d / "manifest.json", json.dumps(man, indent=2))
    return d


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError as exc:
        raise CompileError(f"{path}: not text ({exc.reason} at byte {exc.start}); compile "
                           f"again") from None


def _json(path: Path):
    try:
        return json.loads(_text(path))
    except ValueError as exc:
        raise CompileError(f"{path}: not JSON ({exc}); compile again") from None


def _write(path: Path, data: str | bytes) -> None:
    """Write a file of the directory itself: a symbolic link there is replaced, never
    followed out of it."""
    if path.is_symlink():
        path.unlink()
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def writable_dir(directory: str | Path, what: str) -> Path:
    """`directory`, created if needed, or a one-line error: a file there, no permission."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise CompileError(f"{what} {d}: is a file, not a directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".codesign-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CompileError(f"{what} {d}: cannot write there ({exc.strerror})") from None
    return d


FILES = ("program.s", "program.bin", "dmem.bin", "offchip.bin", "layers.json", "arrays.npz",
         "host.json", "host.npz", "accel.yaml")  # besides manifest.json, which lists their hashes
TFLITE_FILE = "model.tflite"  # a TFLite model's own file: LiteRT's reference reads it
FRONTENDS = ("torch", "tflite")


def _files(frontend: str) -> tuple[str, ...]:
    return FILES + ((TFLITE_FILE,) if frontend == "tflite" else ())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(directory: str | Path):
    """A CompiledNetwork from a compiled directory (the host graph rebuilt from host.json)."""
    from compiler.runtime import CompiledNetwork

    d = Path(directory)
    missing = [n for n in (*FILES, "manifest.json") if not (d / n).is_file()]
    if missing:
        raise CompileError(f"{d}: not a compiled directory (missing {', '.join(missing)})")
    try:
        man = json.loads((d / "manifest.json").read_bytes())
        hashes = man["files"]
        frontend = man.get("frontend", "torch")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CompileError(f"{d}/manifest.json: unreadable ({type(exc).__name__}: {exc}); "
                           f"compile again") from None
    if frontend not in FRONTENDS:
        raise CompileError(f"{d}/manifest.json: frontend {frontend!r}; known: "
                           f"{', '.join(FRONTENDS)}")
    for name in _files(frontend):
        if not (d / name).is_file():
            raise CompileError(f"{d}: not a compiled directory (missing {name})")
        if (d / name).is_symlink():  # a shared directory's files are its own, never a link
            raise CompileError(f"{d}/{name}: is a symbolic link; a compiled directory holds "
                               f"its files itself")
        if hashes.get(name) != _sha256(d / name):
            raise CompileError(f"{d}/{name}: its content differs from the manifest's hash "
                               f"(truncated or edited); compile again")
    config: AccelConfig = load_accel_config(d / "accel.yaml")
    if man["hardware_hash"] != config.hardware_hash():
        raise CompileError(f"{d}/accel.yaml: does not match the manifest's hardware hash")
    listing = _text(d / "program.s")
    program = assemble(listing, Encoding(config), name=str(d / "program.s"))
    if program.harness_words().tobytes() != (d / "program.bin").read_bytes():
        raise CompileError(f"{d}/program.bin: differs from program.s assembled for "
                           f"'{config.name}'")
    arrays = load_arrays((d / "arrays.npz").read_bytes(), f"{d}/arrays.npz")
    saved = from_data(_json(d / "layers.json"), arrays, f"{d}/layers.json")
    image = (d / "dmem.bin").read_bytes()
    offchip = (d / "offchip.bin").read_bytes()
    layers = {layer.name: layer for layer in saved["layers"]}
    bindings = {n: replace(b, layer=layers[n]) for n, b in saved["bindings"].items()}
    segments = saved.get("segments")
    if not isinstance(segments, list) or not all(isinstance(s, Segment) for s in segments) or \
            sorted(n for s in segments for n in s.layers) != sorted(bindings):
        raise CompileError(f"{d}/layers.json: its runs of layers ('segments') are missing or do "
                           f"not cover the compiled layers; compile again")
    compiled = CompiledProgram(config, program, listing, [(0, image)], bindings,
                               [(0, offchip)] if offchip else [], segments)
    constants = load_arrays((d / "host.npz").read_bytes(), f"{d}/host.npz")
    source = load_main(_json(d / "host.json"), constants, f"{d}/host.json")
    if frontend == "tflite":
        from compiler.tflite.patterns import partition_qdq
        mod = partition_qdq(source)
    else:
        mod = partition_for_tta(source)
    conversions = saved.get("conversions") or {}
    if not isinstance(conversions, dict):
        raise CompileError(f"{d}/layers.json: 'conversions' is not a table")
    if conversions:  # inserted after partitioning (compiler.convert), in name order
        mod, made = insert_conversions(mod, [Conversion.from_data(c, f"{d}/layers.json")
                                             for c in conversions.values()])
        if list(made) != list(conversions):
            raise CompileError(f"{d}/layers.json: its conversions {list(conversions)} are not "
                               f"the ones the host graph takes ({list(made)})")
    funcs = [p.layer for p in placement(mod) if p.where == CODEGEN]
    if funcs != list(saved["func_layer"]):
        raise CompileError(f"{d}/host.json: its offloaded functions {funcs} differ from the "
                           f"compiled ones {list(saved['func_layer'])}")
    model_file = (d / TFLITE_FILE).read_bytes() if frontend == "tflite" else b""
    return CompiledNetwork(config, compiled, saved["layers"], placement(mod),
                           tuple(man["input_shape"]), mod, saved["func_layer"], source,
                           frontend, model_file, conversions)
