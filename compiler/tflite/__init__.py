"""int8 TFLite models (TFLite Micro, CMSIS-NN, MLPerf Tiny) compiled with their own quantization.

  .tflite -> `model.read_tflite` (checked) -> TVM's TFLite frontend (QDQ Relax) -> the QDQ
  pattern table (`patterns`) -> layers with TFLite's integer semantics (`layers`) -> the same
  code generation as every network -> a CompiledNetwork whose boundary is the model's own:
  int8 NHWC tensors in and out, as LiteRT takes and gives them.

Layers are named after the TFLite operator they compute (`conv_2d_3`: operator #3), so each
one's output can be compared with LiteRT's tensor (`compiler.tflite.litert`).
"""

from __future__ import annotations

from pathlib import Path

from compiler.codegen import compile_layers
from compiler.errors import CompileError
from compiler.estimate import event_table
from compiler.graph import layer_sources
from compiler.kinds import CODEGEN
from compiler.layer_ir import Layer
from compiler.partition import composite_name, offloaded_functions, placement
from compiler.pipeline import dataflow
from compiler.runtime import CompiledNetwork
from compiler.tflite.layers import read_layer
from compiler.tflite.model import OpInfo, TfliteModel, read_tflite, to_relax
from compiler.tflite.patterns import partition_qdq
from hw.config import AccelConfig

# The TFLite operators each composite computes (in graph order).
_OPS = {"tta.qconv2d": ("CONV_2D", "DEPTHWISE_CONV_2D"), "tta.qdense": ("FULLY_CONNECTED",),
        "tta.qadd": ("ADD",), "tta.qavgpool": ("AVERAGE_POOL_2D",),
        "tta.qmaxpool": ("MAX_POOL_2D",)}


def compile_tflite(path: str | Path, config: AccelConfig) -> CompiledNetwork:
    """An int8 .tflite model -> program for `config`; nothing re-quantized."""
    model = read_tflite(path)
    source = to_relax(model)
    mod = partition_qdq(source)
    funcs = offloaded_functions(mod)
    order = [p.layer for p in placement(mod) if p.where == CODEGEN]
    ops = match_ops(model, [(f, composite_name(funcs[f])) for f in order])
    layers: list[Layer] = []
    names = {}
    for f in order:
        op = ops[f]
        names[f] = f"{op.name.lower()}_{op.index}"
        scale = model.tensors[op.inputs[0]].scale
        layers.append(read_layer(names[f], funcs[f], composite_name(funcs[f]),
                                 f"{model.path}: {model.op_label(op)}",
                                 float(scale[0]) if scale.size else 1.0))
    _, host_use, from_input = dataflow(mod, set(order))
    sources, _ = layer_sources(mod, names)
    program = compile_layers(layers, config, host_inputs=frozenset(names[f] for f in from_input),
                             sources=sources, host_reads=frozenset(names[f] for f in host_use))
    event_table(program)
    shape = tuple(int(d) for d in source["main"].params[0].ty.shape)[1:]
    return CompiledNetwork(config, program, layers, placement(mod), shape, mod, names, source,
                           "tflite", model.buffer)


def match_ops(model: TfliteModel, funcs: list[tuple[str, str]]) -> dict[str, OpInfo]:
    """The TFLite operator of each offloaded function: the next one, in graph order, of the
    operator types its composite computes (TVM's frontend converts operators in order)."""
    used: set[int] = set()
    found = {}
    for f, composite in funcs:
        kinds = _OPS.get(composite, ())
        op = next((o for o in model.ops if o.index not in used and o.name in kinds), None)
        if op is None:
            raise CompileError(f"{model.path}: no {' / '.join(kinds) or composite} operator "
                               f"left for the offloaded function {f}")
        used.add(op.index)
        found[f] = op
    return found
