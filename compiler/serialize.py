"""Data-only storage of the compiler's seam dataclasses (layer IR, bindings, layouts): JSON for
the structure, an npz without pickles for the arrays.

Only the classes listed here can be rebuilt, by their fields, so loading a compiled directory
someone else wrote cannot run code (a pickle could).
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from typing import Any

import numpy as np

from compiler.errors import CompileError
from compiler.intsem import Requant
from compiler.layer_ir import (Add, Affine, Bilinear, Concat, Conv2d, Dense, Lut, Output,
                               Pool, Rescale, Resize, Scale)
from compiler.layout import Im2col, Layout, RowTiling
from compiler.program import ExecBlock, LayerBinding, Segment

CLASSES = {c.__name__: c for c in (Output, Conv2d, Dense, Pool, Add, Affine, Resize, Bilinear,
                                    Concat, Lut, Scale, Requant, Rescale, Layout, RowTiling, Im2col,
                                    ExecBlock, LayerBinding, Segment)}


def to_data(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """JSON-ready data for `obj`; its arrays go into `arrays` (by key)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        if CLASSES.get(name) is not type(obj):
            raise CompileError(f"cannot store a {name}: not one of the stored classes")
        return {"__class__": name, **{f.name: to_data(getattr(obj, f.name), arrays)
                                      for f in dataclasses.fields(obj)}}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise CompileError("cannot store an array of Python objects")
        key = next((k for k, a in arrays.items() if a is obj), f"a{len(arrays)}")
        arrays[key] = obj  # an array met twice (a layer and its binding) is stored once
        return {"__array__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [to_data(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [to_data(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj) or "__class__" in obj:
            raise CompileError("cannot store a mapping whose keys are not plain strings")
        return {k: to_data(v, arrays) for k, v in obj.items()}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CompileError(f"cannot store a {type(obj).__name__}")


def from_data(data: Any, arrays, where: str) -> Any:
    """The object `to_data` described; `where` names the file in errors."""
    if isinstance(data, list):
        return [from_data(v, arrays, where) for v in data]
    if not isinstance(data, dict):
        return data
    if "__array__" in data:
        try:
            return arrays[data["__array__"]]
        except KeyError:
            raise CompileError(f"{where}: refers to array {data['__array__']!r}, which the "
                               f"arrays file does not hold") from None
    if "__tuple__" in data:
        return tuple(from_data(v, arrays, where) for v in data["__tuple__"])
    if "__class__" not in data:
        return {k: from_data(v, arrays, where) for k, v in data.items()}
    name = data["__class__"]
    cls = CLASSES.get(name)
    if cls is None:
        raise CompileError(f"{where}: unknown class {name!r} (stored classes: "
                           f"{', '.join(CLASSES)})")
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    given = set(data) - {"__class__"}
    if given != fields:
        raise CompileError(f"{where}: a {name} with fields {sorted(given)}, expected "
                           f"{sorted(fields)}")
    return cls(**{k: from_data(data[k], arrays, where) for k in fields})


def save_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def load_arrays(raw: bytes, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CompileError(f"{where}: not a data-only npz archive ({exc})") from None
