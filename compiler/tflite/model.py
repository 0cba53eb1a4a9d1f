"""A `.tflite` file as data: parsed with the flatbuffer schema (the `tflite` package), checked
for what codesign can take (one subgraph, int8 activations and weights, int32 biases), and
imported into Relax by TVM's TFLite frontend (quantize / dequantize around float ops).

Refused with one line naming the operator or tensor: float models, int16 activations,
dynamic-range quantization (float activations, int8 weights), several subgraphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tflite
import tvm
from tflite.BuiltinOperator import BuiltinOperator
from tflite.TensorType import TensorType

from compiler.errors import CompileError

OP_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k.lower() for k, v in vars(TensorType).items() if not k.startswith("_")}
# Operators that compute on activations (their activation tensors must be int8).
_SHAPE_ONLY = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE"}


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8", "float32", ...
    scale: np.ndarray  # empty when not quantized
    zero_point: np.ndarray
    constant: bool


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str  # builtin operator name, CONV_2D
    inputs: tuple[int, ...]  # tensor indices (-1: optional input left out)
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class TfliteModel:
    path: Path
    buffer: bytes
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def op_label(self, op: OpInfo) -> str:
        """'CONV_2D #3 (output tensor name)' for messages."""
        out = self.tensors[op.outputs[0]].name if op.outputs else ""
        return f"{op.name} #{op.index}" + (f" ({out})" if out else "")


def read_tflite(path: str | Path) -> TfliteModel:
    """The model's tensors and operators, checked; errors name the file and the op/tensor."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise CompileError(f"{path}: cannot read it ({exc.strerror})") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise CompileError(f"{path}: not a TFLite model (no 'TFL3' flatbuffer identifier)")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() != 1:
            raise CompileError(f"{path}: {model.SubgraphsLength()} subgraphs; codesign compiles "
                               f"models of one subgraph")
        graph = model.Subgraphs(0)
        codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
        tensors = tuple(_tensor(model, graph.Tensors(i), i) for i in range(graph.TensorsLength()))
        ops = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = codes[op.OpcodeIndex()]
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            ops.append(OpInfo(i, OP_NAMES.get(builtin, f"CUSTOM({builtin})"),
                              tuple(int(t) for t in op.InputsAsNumpy()) if op.InputsLength()
                              else (), tuple(int(t) for t in op.OutputsAsNumpy())))
        result = TfliteModel(path, buf, tensors, tuple(ops),
                             tuple(int(t) for t in graph.InputsAsNumpy()),
                             tuple(int(t) for t in graph.OutputsAsNumpy()))
    except CompileError:
        raise
    except Exception as exc:  # a damaged flatbuffer raises anything from struct to index
        raise CompileError(f"{path}: not a readable TFLite model ({type(exc).__name__}: "
                           f"{exc})") from None
    _check_types(result)
    return result


def _tensor(model, t, index: int) -> TensorInfo:
    q = t.Quantization()
    scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else np.zeros(0)
    zp = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else np.zeros(0)
    buffer = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
    constant = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    return TensorInfo(index, t.Name().decode(errors="replace") if t.Name() else f"t{index}",
                      shape, TYPE_NAMES.get(t.Type(), str(t.Type())),
                      np.asarray(scale, np.float32), np.asarray(zp, np.int64), constant)


def _check_types(m: TfliteModel) -> None:
    """int8 activations (uint8 / int16 / float refused by name); weights int8, biases int32."""
    where = m.path
    for op in m.ops:
        acts = [m.tensors[t] for t in (*op.inputs, *op.outputs) if t >= 0
                and not m.tensors[t].constant]
        for t in acts:
            if op.name in ("QUANTIZE", "DEQUANTIZE") and t.dtype == "float32":
                continue  # the model's own float boundary
            if t.dtype == "int16":
                raise CompileError(f"{where}: {m.op_label(op)} has int16 activations (tensor "
                                   f"{t.name!r}); the accelerator computes int8 (16x8 "
                                   f"quantization is not supported)")
            if t.dtype == "float32":
                consts = [m.tensors[c] for c in op.inputs if c >= 0 and m.tensors[c].constant]
                dynamic = any(c.dtype == "int8" for c in consts)
                what = "dynamic-range quantization (float activations, int8 weights)" \
                    if dynamic else "a float model"
                raise CompileError(f"{where}: {m.op_label(op)} computes on float tensor "
                                   f"{t.name!r}: {what}; codesign takes fully int8-quantized "
                                   f"models (TFLiteConverter with a representative dataset and "
                                   f"inference_input_type/output_type int8)")
            if t.dtype not in ("int8", "int32") and op.name not in _SHAPE_ONLY:
                raise CompileError(f"{where}: {m.op_label(op)}: tensor {t.name!r} is "
                                   f"{t.dtype}; codesign takes int8 activations")


def to_relax(m: TfliteModel) -> tvm.IRModule:
    """TVM's TFLite frontend: the model in Relax, quantized ops as quantize / dequantize
    around float ops. Its failures name the operators it lacks."""
    from tvm.relax.frontend.tflite import from_tflite
    try:
        mod = from_tflite(tflite.Model.GetRootAsModel(m.buffer, 0))
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise CompileError(f"{m.path}: TVM's TFLite frontend cannot import it: "
                           f"{text[-1] if text else type(exc).__name__}") from None
    return mod
