"""The compile pipeline: a float torch model -> a compiled network for one accelerator.

torch.export -> Relax (batch norm and padding folded, `compiler.frontend`) -> partition by the
layer kinds' patterns -> float layers read from the offloaded functions -> calibration on the
host graph -> formats of every tensor between layers -> layer IR -> code generation.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import tvm
from tvm import relax

from compiler.codegen import compile_layers
from compiler.convert import PREFIX as CONVERT
from compiler.convert import conversions, insert_conversions
from compiler.errors import CompileError, CompileWarning
from compiler.estimate import event_table
from compiler.fold import fold_for_tta
from compiler.frontend import eval_mode, export, to_relax
from compiler.graph import layer_sources
from compiler.kinds import CODEGEN, FloatLayer, get_kind
from compiler.lower import (LayerStats, Node, Stats, assign_formats, float_forward,
                            match_module, module_weights, quantize, read_function,
                            stored_bits)
from compiler.partition import offloaded_functions, partition_for_tta, placement
from compiler.quantspec import QuantSpec, as_spec
from compiler.runtime import CompiledNetwork, HostGraph
from hw.config import AccelConfig


def compile_model(model: torch.nn.Module, example: torch.Tensor, config: AccelConfig,
                  quant: QuantSpec | dict | str | None = None,
                  calibration: np.ndarray | None = None) -> CompiledNetwork:
    """Float torch model -> program for `config`. Activation scales not fixed by the spec are
    calibrated on `calibration` (a batch of inputs; default: the example)."""
    spec = as_spec(quant)
    recurrent = [f"{n} ({type(m).__name__})" for n, m in model.named_modules()
                 if isinstance(m, torch.nn.RNNBase)]
    if recurrent:
        raise CompileError(f"recurrent layers are not supported (codesign compiles feed-forward "
                           f"networks): {', '.join(recurrent)}")
    model = eval_mode(model)
    folded = fold_for_tta(to_relax(export(model, example)))
    mod = partition_for_tta(folded.mod)
    weights = module_weights(model)
    order, floats, names, nodes = _layers(mod, weights, folded.origins, spec, {})
    funcs, by_name = {names[f]: f for f in order}, {n.name: n for n in nodes}

    def in_format(name: str, i: int) -> tuple[int, int]:
        kind, bits = get_kind(floats[funcs[name]].kind), by_name[name].bits
        b = kind.in_bits(floats[funcs[name]], bits[1])[i]
        return b, stored_bits(kind.weighted, bits[0], b)
    wanted, made = conversions(nodes, funcs, in_format), {}
    if wanted:
        mod, made = insert_conversions(mod, wanted)
        order, floats, names, nodes = _layers(mod, weights, folded.origins, spec, made)
    consumers, host_use, from_input = dataflow(mod, set(order))
    stats = calibrate(mod, floats, names, example if calibration is None else calibration)
    formats = assign_formats(nodes, stats, spec)
    layers = [quantize(n, *formats[n.name]) for n in nodes]
    sources, _ = layer_sources(mod, {f: names[f] for f in order})
    program = compile_layers(layers, config, host_inputs=frozenset(names[f] for f in from_input),
                             sources=sources, host_reads=frozenset(names[f] for f in host_use))
    event_table(program)  # the estimator's per-instruction events, decoded once at compile time
    net = CompiledNetwork(config, program, layers, placement(mod), tuple(example.shape[1:]),
                          mod, {f: names[f] for f in order}, folded.mod,
                          _conversions={n: c.to_data() for n, c in made.items()})
    if any(la.kind != "pool" and min(getattr(la, "w_bits", 8), getattr(la, "a_bits", 8)) < 8
           for la in layers):
        _warn_dead_signal(net, example.numpy() if calibration is None else calibration,
                          spec.source, sources)
    return net


def _layers(mod: tvm.IRModule, weights, origins, spec: QuantSpec, converts: dict):
    """The offloaded layers of `mod` in order: functions, float layers, names (weighted ones
    by module path, inserted conversions by their own, the rest by kind), and dataflow nodes."""
    funcs = offloaded_functions(mod)
    order = [p.layer for p in placement(mod) if p.where == CODEGEN]
    floats = {f: read_function(f, funcs[f]) for f in order}
    names, counts = {}, {}
    for f in order:
        fl = floats[f]
        if f in converts:
            names[f] = f
        elif get_kind(fl.kind).weighted:
            names[f] = match_module(fl, weights, origins)
        else:
            stem = f"{fl.pool}_{fl.kind}" if fl.pool else fl.kind
            i = counts[stem] = counts.get(stem, -1) + 1
            names[f] = f"{stem}_{i}"
    repeated = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
    if len(set(order)) != len(order) or repeated:  # partition_for_tta gives each call its own
        raise CompileError(f"layers share a name ({', '.join(repeated) or 'a shared function'}"
                           f"): each call site must be a layer of its own")
    weighted = [names[f] for f in order
                if get_kind(floats[f].kind).weighted and f not in converts]
    unused = spec.unused_keys(weighted, [names[f] for f in order if f not in converts])
    if unused:
        raise CompileError(f"{spec.source}: layers {', '.join(unused)} match no layer on the "
                           f"accelerator that takes them (conv/dense layers: "
                           f"{', '.join(weighted)}; all: {', '.join(names.values())})")
    consumers, host_use, _ = dataflow(mod, set(order))
    nodes = []
    for f in order:
        fl = floats[f]
        bits = spec.bits(names[f])
        pair = (bits.weights, bits.activations) if get_kind(fl.kind).weighted else (8, 8)
        nodes.append(Node(fl, names[f], (8, 8) if f in converts else pair,
                          tuple((names[c], i) for c, i in consumers.get(f, [])), f in host_use,
                          bits.scales == "per_tensor" and f not in converts))
    return order, floats, names, nodes


def _warn_dead_signal(net: CompiledNetwork, calibration: np.ndarray, source: str,
                      sources: dict) -> None:
    """Warn (CompileWarning) when the quantized network gives one output for calibration
    inputs that differ, naming the first layer whose integer output no
    longer depends on the input: where a low-bit format or its scale loses the signal."""
    xs = np.asarray(calibration, np.float32)[:8]
    if len(xs) < 2 or all(np.array_equal(xs[0], x) for x in xs[1:]):
        return
    outputs: dict[str, list[np.ndarray]] = {}
    finals = []
    with net.runner("reference") as ref:
        for x in xs:
            finals.append(ref(x[None]))
            for name, y in ref.int_outputs.items():
                outputs.setdefault(name, []).append(y)
    if not all(np.array_equal(finals[0], y) for y in finals[1:]):
        return
    dead = next((la for la in net.layers
                 if all(np.array_equal(outputs[la.name][0], y) for y in outputs[la.name][1:])),
                None)
    what = get_kind(dead.kind).describe(dead) if dead else ""
    if dead and dead.name.startswith(CONVERT):  # name the layers it writes the bits of
        readers = [n for n, srcs in sources.items()
                   if any(s.name == dead.name for s in srcs)]
        what = f"{dead.out.kind} values for {', '.join(readers)}"
    where = f"layer {dead.name} ({what}) is the first whose integer output is the same for " \
        f"all of them" if dead else "no layer's alone"
    warnings.warn(CompileWarning(
        f"{source}: the quantized network gives one output for all {len(xs)} calibration "
        f"inputs: {where}; its input's or output's bit width or scale loses the signal"),
        stacklevel=3)


def dataflow(mod: tvm.IRModule, offloaded: set[str]):
    """Per offloaded function: its offloaded consumers (function, input index), whether the
    host (another op or the network's output) reads its result, and the offloaded functions
    whose first input is the network's input itself."""
    producer: dict[relax.Var, str] = {}  # var -> offloaded function computing it (Relax
    #                                      names need not be unique: keyed by identity)
    consumers: dict[str, list[tuple[str, int]]] = {}
    host_use: set[str] = set()
    params = set(mod["main"].params)
    from_input: set[str] = set()

    def uses(expr) -> list:
        found = []
        relax.analysis.post_order_visit(
            expr, lambda e: found.append(e) if isinstance(e, relax.Var) else None)
        return found

    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            is_off = isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar) \
                and value.op.name_hint in offloaded
            if is_off:
                first = value.args[0]
                if isinstance(first, relax.Var) and first in params:
                    from_input.add(value.op.name_hint)
                for i, arg in enumerate(value.args):
                    if isinstance(arg, relax.Var) and arg in producer:
                        consumers.setdefault(producer[arg], []).append(
                            (value.op.name_hint, i))
                producer[binding.var] = value.op.name_hint
            else:
                for var in uses(value):
                    if var in producer:
                        host_use.add(producer[var])
    for var in uses(mod["main"].body.body):
        if var in producer:
            host_use.add(producer[var])
    return consumers, host_use, from_input


def calibrate(mod: tvm.IRModule, floats: dict[str, FloatLayer], names: dict[str, str],
              data) -> dict[str, LayerStats]:
    """Run the float network (offloaded layers in torch) and collect |x| statistics of every
    offloaded layer's inputs and output."""
    data = np.asarray(data.numpy() if isinstance(data, torch.Tensor) else data, np.float32)
    stats = {names[f]: LayerStats([Stats() for _ in fl.in_shapes]) for f, fl in floats.items()}

    def recorder(f: str):
        def run(*xs):
            y = float_forward(floats[f], *xs)
            st = stats[names[f]]
            for s, x in zip(st.inputs, xs):
                s.add(x)
            st.output.add(y)
            return y
        return run

    graph = HostGraph(mod, {f: recorder(f) for f in floats})
    try:
        for x in data:
            graph(x[None])
    finally:
        graph.close()
    return stats


