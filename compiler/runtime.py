"""Run a compiled network: accelerator layers on a backend (RTL, golden model or numpy
reference), everything else on the host through TVM's llvm build.

The host graph calls one packed function per offloaded layer; between layers the host holds
float tensors, and each layer quantizes its input with its own format (exact when the producer
already wrote that format, which `assign_formats` arranges).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from compiler.executor import LayerRun, get_backend
from compiler.hostkernels import host_kernels
from compiler.intsem import quantize_act
from compiler.kinds import fake_quant, get_kind
from compiler.layer_ir import Layer
from compiler.partition import Placement
from compiler.program import CompiledProgram
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
        self._raised: list[BaseException] = []  # a layer's error, raised again past TVM's FFI
        for f, packed in names.items():
            tvm.register_global_func(packed, _packed(funcs[f], self._raised), override=True)
        host = _OffloadToPacked(mod, names).visit_expr(mod["main"])
        self.input_dtype = str(mod["main"].params[0].ty.dtype)  # float32, or a model's int8
        self.vm = relax.VirtualMachine(relax.build(tvm.IRModule({"main": host}), target="llvm"),
                                       tvm.cpu())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self._raised.clear()
        try:
            result = self.vm["main"](tvm.runtime.tensor(
                np.ascontiguousarray(x, self.input_dtype)))
        except Exception:
            if self._raised:  # the layer's own error, not TVM's wrapping of it
                raise self._raised[0] from None
            raise
        while not hasattr(result, "numpy"):  # the exported program returns a tuple
            result = result[0]
        return result.numpy()

    def close(self) -> None:
        for name in self._registered:
            tvm_ffi.remove_global_func(name)
        self._registered = []
        self.vm = None


def _packed(fn, raised: list):
    def run(*args):
        *xs, out = args
        try:
            y = fn(*(x.numpy()[0] for x in xs))
        except Exception as exc:
            raised.append(exc)
            raise
        out.copyfrom(np.asarray(y).astype(str(out.dtype)).reshape(tuple(out.shape)))
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
    _source: tvm.IRModule = field(repr=False, default=None)  # the network in Relax, before
    #                            partitioning: what a compiled directory stores
    frontend: str = "torch"  # "torch": float tensors between layers, each layer quantizing its
    #                          inputs; "tflite": the model's own int8 NHWC tensors
    model_file: bytes = field(repr=False, default=b"")  # a TFLite model's own file (LiteRT
    #                                                     checks the layers against it)
    # the conversions inserted after partitioning (compiler.convert), as data: name ->
    # {"producer", "bits", "readers"}; loading partitions the source again and inserts them
    _conversions: dict = field(repr=False, default_factory=dict)

    @property
    def input_dtype(self) -> str:
        """float32, or an int8 TFLite model's int8."""
        return str(self._host["main"].params[0].ty.dtype)

    def random_inputs(self, n: int, seed: int = 0) -> np.ndarray:
        """n inputs of the network's own kind: int8 over the whole range, or N(0, 1) floats."""
        rng = np.random.default_rng(seed)
        if self.input_dtype == "int8":
            return rng.integers(-128, 128, (n, *self.input_shape)).astype(np.int8)
        return rng.standard_normal((n, *self.input_shape)).astype(np.float32)

    def runner(self, backend: str = "rtl") -> "NetworkRunner":
        return NetworkRunner(self, backend)

    def fake_quant(self) -> HostGraph:
        """The torch fake-quant model of this compilation (float arithmetic on the same
        quantized values); call it like a runner, close it after."""
        by_name = {layer.name: layer for layer in self.layers}
        return HostGraph(self._host, {f: (lambda *xs, layer=by_name[n]: fake_quant(layer, *xs))
                                      for f, n in self._func_layer.items()})

    def placement_report(self) -> str:
        names = {f: n for f, n in self._func_layer.items()}
        rows = [f"  {p.where:<5} {p.op:<34} {names.get(p.layer, p.layer)}" for p in self.placement]
        runs = [f"  {i + 1}. {s.layers[0]}" + (f" .. {s.layers[-1]} ({len(s.layers)} layers)"
                                                 if len(s.layers) > 1 else "") + f": {s.why}"
                for i, s in enumerate(self.program.segments)]
        return "placement (where each op runs):\n" + "\n".join(rows) + \
            f"\naccelerator runs per inference: {len(runs)} (the host hands over between " \
            f"runs; within one, the layers' own code does)\n" + "\n".join(runs)


class NetworkRunner:
    """One compiled network bound to one backend; call it with a float input batch of 1."""

    def __init__(self, net: CompiledNetwork, backend: str):
        self.net = net
        self.backend = get_backend(backend, net.program)
        self.layer_runs: list[LayerRun] = []  # of the last call
        self.int_outputs: dict[str, np.ndarray] = {}  # of the last call
        self.int_inputs: dict[str, list[np.ndarray]] = {}  # each layer's, of the last call
        by_name = {layer.name: layer for layer in net.layers}
        make = self._integer_func if net.frontend == "tflite" else self._layer_func
        funcs = {f: make(by_name[n]) for f, n in net._func_layer.items()}
        self.graph = HostGraph(net._host, {**funcs, **host_kernels(net._host)})

    def _integer_func(self, layer: Layer):
        """A layer between int8 NHWC tensors (a model's own): CHW on the accelerator."""
        def run(*xs):
            qs = [np.moveaxis(x, -1, 0) if x.ndim == 3 else x.reshape(-1) for x in xs]
            self.int_inputs[layer.name] = qs
            y, stats = self.backend.run(layer.name, *qs)
            self.int_outputs[layer.name] = y
            if stats is not None:
                self.layer_runs.append(stats)
            return np.moveaxis(y, 0, -1) if y.ndim == 3 else y
        return run

    def _layer_func(self, layer: Layer):
        formats = get_kind(layer.kind).input_formats(layer)

        def run(*xs):
            qs = [quantize_act(x, s, b) for x, (s, b) in zip(xs, formats)]
            self.int_inputs[layer.name] = qs
            y, stats = self.backend.run(layer.name, *qs)
            self.int_outputs[layer.name] = y
            if stats is not None:
                self.layer_runs.append(stats)
            scale = np.asarray(layer.out.scale, np.float64).reshape((-1,) + (1,) * (y.ndim - 1))
            return y.astype(np.float64) * scale
        return run

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).reshape((1,) + self.net.input_shape)
        self.layer_runs, self.int_outputs, self.int_inputs = [], {}, {}
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
