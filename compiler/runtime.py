"""Compile a torch model for the TTA and run it: accelerator layers on a backend (RTL, golden
model or numpy reference), everything else on the host through TVM's llvm build.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from compiler.codegen import CompiledProgram, compile_layers
from compiler.errors import CompileError
from compiler.executor import LayerRun, get_backend
from compiler.frontend import export, to_relax
from compiler.intsem import quantize_activation
from compiler.layer_ir import Layer
from compiler.lower import QuantSpec, match_module, module_weights, quantize_layer, read_function
from compiler.partition import Placement, offloaded_functions, partition_for_tta, placement
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

    def placement_report(self) -> str:
        rows = [f"  {p.where:<5} {p.op:<28} {p.layer}" for p in self.placement]
        return "placement (where each op runs):\n" + "\n".join(rows)


def compile_model(model: torch.nn.Module, example: torch.Tensor, config: AccelConfig,
                  quant: QuantSpec) -> CompiledNetwork:
    mod = partition_for_tta(to_relax(export(model, example)))
    weights = module_weights(model)
    funcs = offloaded_functions(mod)
    func_layer, layers = {}, []
    for p in placement(mod):  # in program order
        if p.where != "tta":
            continue
        f = read_function(funcs[p.layer])
        name = match_module(f, weights, p.layer)
        if name not in quant:
            raise CompileError(f"layer {name}: no entry in the quantization spec "
                               f"(entries: {', '.join(quant) or 'none'})")
        layers.append(quantize_layer(name, f, quant[name]))
        func_layer[p.layer] = name
    program = compile_layers(layers, config)
    return CompiledNetwork(config, program, layers, placement(mod), tuple(example.shape), mod,
                           func_layer)


class NetworkRunner:
    """One compiled network bound to one backend; call it with a float input batch of 1."""

    def __init__(self, net: CompiledNetwork, backend: str):
        self.net = net
        self.backend = get_backend(backend, net.program)
        self.layer_runs: list[LayerRun] = []  # of the last call
        self.int_outputs: dict[str, np.ndarray] = {}  # of the last call
        prefix = f"codesign.tta.{next(_ids)}"
        names = {f: f"{prefix}.{layer}" for f, layer in net._func_layer.items()}
        self._registered = list(names.values())
        by_name = {layer.name: layer for layer in net.layers}
        for f, packed in names.items():
            tvm.register_global_func(packed, self._layer_func(by_name[net._func_layer[f]]),
                                     override=True)
        host = _OffloadToPacked(net._host, names).visit_expr(net._host["main"])
        host_mod = tvm.IRModule({"main": host})
        self.vm = relax.VirtualMachine(relax.build(host_mod, target="llvm"), tvm.cpu())

    def _layer_func(self, layer: Layer):
        def run(x, out):
            q = quantize_activation(x.numpy(), layer.in_scale)
            y, stats = self.backend.run(layer.name, q[0])
            self.int_outputs[layer.name] = y
            if stats is not None:
                self.layer_runs.append(stats)
            out.copyfrom((y.astype(np.float64) * layer.out_scale).astype(np.float32)
                         .reshape(tuple(out.shape)))
        return run

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32).reshape(self.net.input_shape)
        self.layer_runs, self.int_outputs = [], {}
        result = self.vm["main"](tvm.runtime.tensor(x))
        while not hasattr(result, "numpy"):  # the exported program returns a tuple
            result = result[0]
        return result.numpy()

    def close(self) -> None:
        """Unregister the layer functions (the global registry would keep this runner alive)."""
        for name in self._registered:
            tvm_ffi.remove_global_func(name)
        self._registered = []
        self.vm = self.backend = None

    def __enter__(self) -> "NetworkRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def cycles(self) -> int:
        """Accelerator cycles of the last call."""
        return sum(r.cycles for r in self.layer_runs)
