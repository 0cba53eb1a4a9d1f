"""Compile a torch model for the TTA and run it: accelerator layers on a backend (RTL, golden
model or numpy reference), everything else on the host through TVM's llvm build.

The host graph calls one packed function per offloaded layer; between layers the host holds
float tensors, and each layer quantizes its input with its own format (exact when the producer
already wrote that format, which `assign_formats` arranges).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from compiler.codegen import CompiledProgram, compile_layers
from compiler.errors import CompileError
from compiler.estimate import event_table
from compiler.executor import LayerRun, get_backend
from compiler.frontend import eval_mode, export, to_relax
from compiler.intsem import quantize_act
from compiler.layer_ir import Add, Conv2d, Dense, Layer
from compiler.lower import (FloatLayer, LayerStats, Node, Stats, assign_formats, float_forward,
                            match_module, module_weights, quantize, read_function)
from compiler.partition import CODEGEN, Placement, offloaded_functions, partition_for_tta, placement
from compiler.quantspec import QuantSpec, as_spec
from compiler.reference import fake_quant_layer
from hw.config import AccelConfig

_ids = itertools.count()


@mutator
class _OffloadToPacked(PyExprMutator):
    """Replace calls of offloaded functions with call_dps_packed into per-layer functions."""

    def __init__(self, mod: tvm.IRModule, names: dict[str, str]):
        super().__init__(mod)
        self.names = names  # offloaded function -> packed function name

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if isinstance(call.op, tvm.ir.GlobalVar) and call.op.name_hint in self.names:
            return relax.call_dps_packed(self.names[call.op.name_hint],
                                         relax.Tuple(list(call.args)), out_ty=call.ty)
        return call


class HostGraph:
    """The partitioned network on TVM's VM, each offloaded function bound to a Python callable
    (numpy inputs -> numpy output). Close it, or the global registry keeps the callables."""

    def __init__(self, mod: tvm.IRModule, funcs: dict[str, Callable[..., np.ndarray]]):
        prefix = f"codesign.tta.{next(_ids)}"
        names = {f: f"{prefix}.{f}" for f in funcs}
        self._registered = list(names.values())
        for f, packed in names.items():
            tvm.register_global_func(packed, _packed(funcs[f]), override=True)
        host = _OffloadToPacked(mod, names).visit_expr(mod["main"])
        self.vm = relax.VirtualMachine(relax.build(tvm.IRModule({"main": host}), target="llvm"),
                                       tvm.cpu())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        result = self.vm["main"](tvm.runtime.tensor(np.ascontiguousarray(x, np.float32)))
        while not hasattr(result, "numpy"):  # the exported program returns a tuple
            result = result[0]
        return result.numpy()

    def close(self) -> None:
        for name in self._registered:
            tvm_ffi.remove_global_func(name)
        self._registered = []
        self.vm = None


def _packed(fn):
    def run(*args):
        *xs, out = args
        y = fn(*(x.numpy()[0] for x in xs))
        out.copyfrom(np.asarray(y, np.float32).reshape(tuple(out.shape)))
    return run


@dataclass
class CompiledNetwork:
    config: AccelConfig
    program: CompiledProgram
    layers: list[Layer]  # in execution order
    placement: list[Placement]
    input_shape: tuple[int, ...]
    _host: tvm.IRModule = field(repr=False, default=None)
    _func_layer: dict[str, str] = field(repr=False, default_factory=dict)

    def runner(self, backend: str = "rtl") -> "NetworkRunner":
        return NetworkRunner(self, backend)

    def fake_quant(self) -> HostGraph:
        """The torch fake-quant model of this compilation (float arithmetic on the same
        quantized values); call it like a runner, close it after."""
        by_name = {layer.name: layer for layer in self.layers}
        return HostGraph(self._host, {f: (lambda *xs, layer=by_name[n]: fake_quant_layer(layer, *xs))
                                      for f, n in self._func_layer.items()})

    def placement_report(self) -> str:
        names = {f: n for f, n in self._func_layer.items()}
        rows = [f"  {p.where:<5} {p.op:<34} {names.get(p.layer, p.layer)}" for p in self.placement]
        return "placement (where each op runs):\n" + "\n".join(rows)


def fold_batch_norm(model: torch.nn.Module) -> torch.nn.Module:
    """Conv/Linear + BatchNorm folded for inference (torch.fx); the model as is when it cannot
    be traced (its batch norms then run on the host)."""
    from torch.fx.experimental.optimization import fuse
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    try:
        return fuse(eval_mode(model))
    except Exception as exc:  # fx tracing fails on data-dependent control flow
        print(f"[compiler] batch norm not folded ({type(exc).__name__}: {exc}); it runs on the "
              f"host", file=sys.stderr)
        return model


def compile_model(model: torch.nn.Module, example: torch.Tensor, config: AccelConfig,
                  quant: QuantSpec | dict | str | None = None,
                  calibration: np.ndarray | None = None) -> CompiledNetwork:
    """Float torch model -> program for `config`. Activation scales not fixed by the spec are
    calibrated on `calibration` (a batch of inputs; default: the example)."""
    spec = as_spec(quant)
    model = fold_batch_norm(eval_mode(model))
    mod = partition_for_tta(to_relax(export(model, example)))
    funcs = offloaded_functions(mod)
    order = [p.layer for p in placement(mod) if p.where == CODEGEN]
    floats = {f: read_function(f, funcs[f]) for f in order}
    weights = module_weights(model)
    names, counts = {}, {}
    for f in order:
        fl = floats[f]
        if fl.kind in ("conv2d", "dense"):
            names[f] = match_module(fl, weights)
        else:
            i = counts[fl.kind] = counts.get(fl.kind, -1) + 1
            names[f] = f"{fl.kind}_{i}"
    unused = spec.unused_keys([names[f] for f in order if floats[f].kind in ("conv2d", "dense")])
    if unused:
        raise CompileError(f"{spec.source}: layers {', '.join(unused)} match no conv/dense "
                           f"layer on the accelerator (layers: "
                           f"{', '.join(n for f, n in names.items())})")
    consumers, host_use = _dataflow(mod, set(order))
    nodes = []
    for f in order:
        fl = floats[f]
        bits = spec.bits(names[f])
        pair = (bits.weights, bits.activations) if fl.kind in ("conv2d", "dense") else (8, 8)
        nodes.append(Node(fl, names[f], pair,
                          tuple((names[c], i) for c, i in consumers.get(f, [])), f in host_use))
    stats = calibrate(mod, floats, names, example if calibration is None else calibration)
    formats = assign_formats(nodes, stats, spec)
    layers = [quantize(n, *formats[n.name]) for n in nodes]
    program = compile_layers(layers, config)
    event_table(program)  # the estimator's per-instruction events, decoded once at compile time
    return CompiledNetwork(config, program, layers, placement(mod), tuple(example.shape[1:]),
                           mod, {f: names[f] for f in order})


def _dataflow(mod: tvm.IRModule, offloaded: set[str]):
    """Per offloaded function: its offloaded consumers (function, input index), and whether the
    host (another op or the network's output) reads its result."""
    producer: dict[str, str] = {}  # var name -> offloaded function computing it
    consumers: dict[str, list[tuple[str, int]]] = {}
    host_use: set[str] = set()

    def uses(expr) -> list:
        found = []
        relax.analysis.post_order_visit(
            expr, lambda e: found.append(e.name) if isinstance(e, relax.Var) else None)
        return found

    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            is_off = isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar) \
                and value.op.name_hint in offloaded
            if is_off:
                for i, arg in enumerate(value.args):
                    if isinstance(arg, relax.Var) and arg.name in producer:
                        consumers.setdefault(producer[arg.name], []).append(
                            (value.op.name_hint, i))
                producer[binding.var.name] = value.op.name_hint
            else:
                for name in uses(value):
                    if name in producer:
                        host_use.add(producer[name])
    for name in uses(mod["main"].body.body):
        if name in producer:
            host_use.add(producer[name])
    return consumers, host_use


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


class NetworkRunner:
    """One compiled network bound to one backend; call it with a float input batch of 1."""

    def __init__(self, net: CompiledNetwork, backend: str):
        self.net = net
        self.backend = get_backend(backend, net.program)
        self.layer_runs: list[LayerRun] = []  # of the last call
        self.int_outputs: dict[str, np.ndarray] = {}  # of the last call
        by_name = {layer.name: layer for layer in net.layers}
        self.graph = HostGraph(net._host, {f: self._layer_func(by_name[n])
                                           for f, n in net._func_layer.items()})

    def _layer_func(self, layer: Layer):
        if isinstance(layer, (Conv2d, Dense)):
            formats = [(layer.in_scale, layer.a_bits)]
        elif isinstance(layer, Add):
            formats = [(layer.a_scale, 8), (layer.b_scale, 8)]
        else:
            formats = [(layer.in_scale, 8)]

        def run(*xs):
            qs = [quantize_act(x, s, b) for x, (s, b) in zip(xs, formats)]
            y, stats = self.backend.run(layer.name, *qs)
            self.int_outputs[layer.name] = y
            if stats is not None:
                self.layer_runs.append(stats)
            scale = np.asarray(layer.out.scale, np.float64).reshape((-1,) + (1,) * (y.ndim - 1))
            return y.astype(np.float64) * scale
        return run

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32).reshape((1,) + self.net.input_shape)
        self.layer_runs, self.int_outputs = [], {}
        return self.graph(x)

    def close(self) -> None:
        """Unregister the layer functions (the global registry would keep this runner alive)."""
        self.graph.close()
        self.backend = None

    def __enter__(self) -> "NetworkRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def cycles(self) -> int:
        """Accelerator cycles of the last call."""
        return sum(r.cycles for r in self.layer_runs)
