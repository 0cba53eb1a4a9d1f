"""The float network's Relax `main` as data: JSON for the bindings, an npz for the constants.

A compiled directory holds the host part of a network in this form, because every loader of
executable formats can run code: torch's pt2 loader unpickles marked weights, sample inputs
and custom objects, resolves `torch.*` names from the file and parses sympy strings; TVM's
JSON can hold functions that call any registered packed function. Here only high-level Relax
operators are rebuilt (those TVM itself legalizes to its own kernels, never a call of a named
function, a packed function or a prim_func), their attributes only as the operator's own
attribute type, and every type is inferred again from the operators and the constants'
arrays, so a file cannot claim a shape its data does not have.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.ir.expr import GenericConst, StringImm

from compiler.errors import CompileError

# Operators with a legalization that nonetheless reach the runtime's named functions or
# devices: never read from a file.
_REFUSED_PREFIXES = ("relax.call", "relax.builtin", "relax.vm", "relax.memory", "relax.ccl",
                     "relax.distributed", "relax.print", "relax.assert", "relax.hint",
                     "relax.to_vdevice", "relax.invoke")


def dump_main(mod: tvm.IRModule, arrays: dict[str, np.ndarray]) -> dict:
    """`mod['main']` as JSON-ready data; its constants go into `arrays` (keys c0, c1, ...)."""
    main = mod["main"]
    index: dict[relax.Var, int] = {}
    params = []
    for p in main.params:
        index[p] = len(index)
        params.append({"name": p.name, "shape": _shape_of(p.ty, p.name),
                       "dtype": str(p.ty.dtype)})
    bindings = []
    for block in main.body.blocks:
        for b in block.bindings:
            if not isinstance(b, relax.VarBinding):
                raise CompileError(f"cannot store the host graph: binding {b.var.name} "
                                   f"is a {type(b).__name__}")
            bindings.append(_expr(b.value, index, arrays))
            index[b.var] = len(index)
    return {"params": params, "bindings": bindings,
            "output": _expr(main.body.body, index, arrays)}


def load_main(data: Any, arrays: dict[str, np.ndarray], where: str) -> tvm.IRModule:
    """The IRModule `dump_main` described, every type inferred again; `where` names the file
    in errors (one line naming the binding, operator or field at fault)."""
    try:
        params = [relax.Var(str(p["name"]), relax.TensorType(
            [int(d) for d in p["shape"]], str(p["dtype"]))) for p in data["params"]]
        bindings, output = list(data["bindings"]), data["output"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CompileError(f"{where}: not a host graph ({type(exc).__name__}: {exc})") from None
    builder = relax.BlockBuilder()
    with builder.function("main", params):
        with builder.dataflow():
            env = list(params)
            # the binding the function returns leaves the dataflow block: an output var
            last = output == {"var": len(params) + len(bindings) - 1} and bindings
            for i, binding in enumerate(bindings[:-1] if last else bindings):
                expr = _rebuild(binding, env, arrays, f"{where}: binding {i}")
                env.append(_normalized(builder.emit, expr, f"{where}: binding {i}"))
            out = _normalized(builder.emit_output, _rebuild(
                bindings[-1] if last else output, env, arrays, f"{where}: output"),
                f"{where}: output")
        builder.emit_func_output(out)
    return builder.get()


def _normalized(emit, expr, where: str):
    try:
        return emit(expr)
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CompileError(f"{where}: its operator rejects its arguments ({first})") from None


def _shape_of(ty, what: str) -> list[int]:
    try:
        return [int(d) for d in ty.shape]
    except (AttributeError, TypeError, ValueError):
        raise CompileError(f"cannot store the host graph: {what} has no static shape") from None


def _expr(e, index: dict, arrays: dict) -> dict:
    if isinstance(e, relax.Var):
        return {"var": index[e]}
    if isinstance(e, GenericConst):
        key = f"c{len(arrays)}"
        arrays[key] = e.value.numpy()
        return {"const": key}
    if isinstance(e, relax.Tuple):
        return {"tuple": [_expr(f, index, arrays) for f in e.fields]}
    if isinstance(e, relax.TupleGetItem):
        return {"item": _expr(e.tuple_value, index, arrays), "index": int(e.index)}
    if isinstance(e, relax.ShapeExpr):
        return {"shape": [_int(v, "a shape") for v in e.values]}
    if isinstance(e, StringImm):
        return {"string": e.value}
    if isinstance(e, (tvm.tirx.IntImm, tvm.tirx.FloatImm)):  # scalar arguments (clip bounds)
        return {"prim": _value(e, "a scalar")}
    if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op):
        name = e.op.name
        if e.ty_args:
            raise CompileError(f"cannot store the host graph: {name} has type arguments")
        attrs = None
        if e.attrs is not None:
            info = type(e.attrs).__tvm_ffi_type_info__
            attrs = {"type": info.type_key,
                     "fields": {f.name: _value(getattr(e.attrs, f.name), f"{name}.{f.name}")
                                for f in info.fields}}
        return {"call": name, "args": [_expr(a, index, arrays) for a in e.args], "attrs": attrs}
    raise CompileError(f"cannot store the host graph: a {type(e).__name__} expression")


def _int(v, what: str) -> int:
    if isinstance(v, tvm.tirx.IntImm):
        return int(v.value)
    if isinstance(v, int):
        return v
    raise CompileError(f"cannot store the host graph: {what} holds {v!r}, not an integer")


def _value(v, what: str):
    """An attribute as JSON: plain values as themselves, the rest tagged."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, tvm.tirx.IntImm):
        return {"int": int(v.value), "dtype": str(v.ty)}
    if isinstance(v, tvm.tirx.FloatImm):
        return {"float": float(v.value), "dtype": str(v.ty)}
    if isinstance(v, tvm.DataType):
        return {"datatype": str(v)}
    if isinstance(v, (tvm_ffi.Array, list, tuple)):
        return [_value(x, what) for x in v]
    raise CompileError(f"cannot store the host graph: {what} is a {type(v).__name__}")


def _rebuild(d, env: list, arrays: dict, where: str):
    if not isinstance(d, dict) or len(d) == 0:
        raise CompileError(f"{where}: expected an expression, got {d!r:.60}")
    if "var" in d:
        i = d["var"]
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(env):
            raise CompileError(f"{where}: refers to value {i!r}, not one defined before it")
        return env[i]
    if "const" in d:
        a = arrays.get(d["const"]) if isinstance(d["const"], str) else None
        if a is None or a.dtype.kind not in "biuf":
            raise CompileError(f"{where}: constant {d['const']!r} is not a numeric array of "
                               f"the constants file")
        return relax.const(a)
    if "tuple" in d:
        return relax.Tuple([_rebuild(f, env, arrays, where) for f in _list(d["tuple"], where)])
    if "item" in d:
        return relax.TupleGetItem(_rebuild(d["item"], env, arrays, where), _plain_int(
            d.get("index"), where))
    if "shape" in d:
        return relax.ShapeExpr([_plain_int(v, where) for v in _list(d["shape"], where)])
    if "string" in d:
        return StringImm(str(d["string"]))
    if "prim" in d:
        value = _attr(d["prim"], where)
        if not isinstance(value, (tvm.tirx.IntImm, tvm.tirx.FloatImm)):
            raise CompileError(f"{where}: {d['prim']!r:.60} is not a scalar")
        return value
    if "call" in d:
        return _call(d, env, arrays, where)
    raise CompileError(f"{where}: unknown expression with keys {sorted(d)}")


def _call(d: dict, env: list, arrays: dict, where: str):
    name = d["call"]
    op = _op(name, where)
    args = [_rebuild(a, env, arrays, where) for a in _list(d.get("args"), where)]
    attrs = d.get("attrs")
    if attrs is not None:
        # the operator's own attribute type; some operators do not declare theirs
        kind = attrs.get("type") if isinstance(attrs, dict) else None
        expected = op.attrs_type_key or "relax.attrs.*"
        if not isinstance(kind, str) or kind != expected and not (
                not op.attrs_type_key and kind.startswith("relax.attrs.")) or \
                not isinstance(attrs.get("fields"), dict):
            raise CompileError(f"{where}: {name}'s attributes must be a {expected}")
        try:
            attrs = tvm.ir.make_node(kind, **{
                str(k): _attr(v, where) for k, v in attrs["fields"].items()})
        except (RuntimeError, TypeError, ValueError) as exc:
            raise CompileError(f"{where}: {name}'s attributes are invalid ({exc})") from None
    return relax.Call(op, args, attrs)


def _op(name, where: str) -> tvm.ir.Op:
    if not isinstance(name, str) or not name.startswith("relax.") or \
            name.startswith(_REFUSED_PREFIXES):
        raise CompileError(f"{where}: operator {name!r} is not one a host graph may hold")
    try:
        op = tvm.ir.Op.get(name)
    except (RuntimeError, ValueError):
        raise CompileError(f"{where}: unknown operator {name!r}") from None
    if op.get_attr("FLegalize") is None:
        raise CompileError(f"{where}: operator {name!r} is not one a host graph may hold "
                           f"(only operators TVM legalizes to its own kernels)")
    return op


def _attr(v, where: str):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, list):
        return [_attr(x, where) for x in v]
    if isinstance(v, dict) and "datatype" in v:
        return tvm.DataType(str(v["datatype"]))
    if isinstance(v, dict) and ("int" in v or "float" in v):
        return _prim(v.get("int", v.get("float")), str(v.get("dtype")), where)
    raise CompileError(f"{where}: attribute value {v!r:.60} is not plain data")


def _prim(value, dtype: str, where: str):
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(value)
        if dtype.startswith(("int", "uint", "bool")):
            return tvm.tirx.IntImm(dtype, int(value))
        return tvm.tirx.FloatImm(dtype, float(value))
    except (ValueError, RuntimeError) as exc:
        raise CompileError(f"{where}: {value!r} is not a {dtype} value ({exc})") from None


def _plain_int(v, where: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise CompileError(f"{where}: {v!r} is not an integer")
    return v


def _list(v, where: str) -> list:
    if not isinstance(v, list):
        raise CompileError(f"{where}: {v!r:.60} is not a list")
    return v
