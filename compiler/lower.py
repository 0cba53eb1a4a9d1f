"""Offloaded Relax functions -> layer IR.

1. `read_function` reads the float layer inside each offloaded function (its kind, named by the
   composite, reads op attributes and constants); `float_forward` runs it in torch (for
   calibration).
2. `assign_formats` gives every tensor between layers a quantization (bits, scale): a layer's
   input takes the spec's bits and a calibrated (or given) scale; a layer writes its output in
   the format its only consumer reads, so nothing is requantized twice.
3. `quantize` turns a float layer and its formats into the integers of the layer IR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from compiler import intsem
from compiler.errors import CompileError
from compiler.fold import weight_key
from compiler.kinds import FloatLayer, TensorQuant, get_kind, kind_of_composite
from compiler.kinds.base import relu_like, sign_like
from compiler.layer_ir import Layer
from compiler.plans.base import mac_bits
from compiler.partition import composite_name
from compiler.quantspec import QuantSpec

if TYPE_CHECKING:
    import torch


def read_function(name: str, func: relax.Function) -> FloatLayer:
    """The float layer inside one offloaded function, read by the kind its composite names."""
    return kind_of_composite(composite_name(func)).read_function(name, func)


def float_forward(f: FloatLayer, *xs: np.ndarray) -> np.ndarray:
    """The float layer in torch, batch 1 (calibration runs this in place of the accelerator)."""
    return get_kind(f.kind).float_forward(f, *xs)


def module_weights(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Module path -> weight of every conv / linear layer (by parameter name, so modules
    rebuilt from an ExportedProgram match too)."""
    return {name.removesuffix(".weight"): p.detach().cpu().numpy()
            for name, p in model.named_parameters()
            if name.endswith(".weight") and p.dim() in (2, 4)}


def match_module(layer: FloatLayer, weights: dict[str, np.ndarray],
                 origins: dict[str, np.ndarray] | None = None) -> str:
    """The module path of a conv / linear layer, found by its weight (before any batch norm
    was folded into it: `origins`)."""
    w = layer.weight.astype(np.float32)
    w = (origins or {}).get(weight_key(w), w)
    names = [n for n, mw in weights.items() if mw.shape == w.shape and np.array_equal(mw, w)]
    if len(names) != 1:
        what = "no" if not names else f"{len(names)} ({', '.join(names)})"
        raise CompileError(f"a {layer.kind} layer ({layer.func}, weight "
                           f"{tuple(layer.weight.shape)}) matches {what} nn.Conv2d / nn.Linear "
                           f"modules of the model: codesign quantizes the weights of those "
                           f"modules, by module path (is it a functional call with a weight "
                           f"tensor of its own?)")
    return names[0]


# --- formats -------------------------------------------------------------------------------

@dataclass
class Stats:
    """Calibration statistics of one tensor: max and mean of |x| over the samples."""

    amax: float = 0.0
    abs_sum: float = 0.0
    count: int = 0

    def add(self, x: np.ndarray) -> None:
        a = np.abs(np.asarray(x, np.float64))
        self.amax = max(self.amax, float(a.max(initial=0.0)))
        self.abs_sum += float(a.sum())
        self.count += a.size

    @property
    def mean(self) -> float:
        return self.abs_sum / self.count if self.count else 0.0


@dataclass
class LayerStats:
    inputs: list[Stats] = field(default_factory=list)
    output: Stats = field(default_factory=Stats)


@dataclass(frozen=True)
class Node:
    """One offloaded layer in the dataflow: its name and who reads its output."""

    float_layer: FloatLayer
    name: str
    bits: tuple[int, int]  # (weights, activations) of conv/dense; (8, 8) otherwise
    consumers: tuple[tuple[str, int], ...]  # (layer name, input index) among offloaded layers
    host_use: bool  # read by a host op or returned by the network
    per_tensor: bool = False  # one weight scale for the layer (QuantSpec scales)


def assign_formats(nodes: list[Node], stats: dict[str, LayerStats],
                   spec: QuantSpec) -> dict[str, tuple[list[TensorQuant], TensorQuant]]:
    """(input formats, output format) per layer; see the module docstring."""
    formats: dict[str, tuple[list[TensorQuant], TensorQuant]] = {}
    by_name = {n.name: n for n in nodes}
    for node in reversed(nodes):  # consumers first
        f, st = node.float_layer, stats[node.name]
        kind = get_kind(f.kind)
        own = TensorQuant(8, intsem.act_scale(st.output.amax, st.output.mean, 8))
        wanted = _shared_format(node, formats, by_name)
        if wanted is not None and (wanted.bits, wanted.storage) == (1, 8):
            out = own  # binary values as bytes: the host widens them
        elif wanted is not None and wanted.storage and kind.weighted and not node.host_use \
                and (wanted.bits == 2 or not f.act or sign_like(f.act)):
            out = wanted  # values as their reader stores them (an int8 output clipped to +-1,
            #               a ternary one that never writes 0)
        elif wanted is not None and (not node.host_use or wanted.bits == 8):
            out = wanted
            relu_ternary = out.bits == 2 and relu_like(f.act, float(out.scale))
            sign_kept = out.bits == 1 and sign_like(f.act)
            if out.bits < 8 and (not kind.weighted or (f.act and not (relu_ternary
                                                                       or sign_kept))):
                out = own  # a clip, pooling or add feeding 1-2 bit inputs: int8, the
                # consumer's quantizer runs on the host between the layer runs (a ReLU
                # before a ternary input is the ternary output's `relu`: no -1; a clip around
                # 0 before a binary input keeps the sign: the output is the accumulator's)
        elif kind.weighted and not node.consumers and not f.act:
            out = TensorQuant(32, 0.0)  # exact accumulators to the host
        else:
            out = own
        ins = []
        for i, (s, bits) in enumerate(zip(st.inputs, kind.in_bits(f, node.bits[1]))):
            given = spec.act_scales.get(node.name) if i == 0 else None
            scale = given if given is not None else intsem.act_scale(s.amax, s.mean, bits)
            if f.pool == "max" or kind.passes_values:  # values pass: one scale in and out
                scale = out.scale
            ins.append(TensorQuant(bits, scale, stored_bits(kind.weighted, node.bits[0], bits)))
        formats[node.name] = (ins, out)
    return formats


def stored_bits(weighted: bool, w_bits: int, bits: int) -> int:
    """The bits a `bits`-bit input value takes in its reader's memory (`TensorQuant.storage`;
    0: `bits` themselves). A producer writes ternary values as bytes and binary ones as 2-bit
    codes; binary values as bytes (+-1, an 8-bit-weight layer's) the host widens."""
    stored = mac_bits(w_bits, bits) if weighted and bits < 8 else bits
    return 0 if stored == bits else stored


def _values_pass(node: Node) -> bool:
    """The layer moves values unchanged: its input's scale is its output's."""
    return node.float_layer.pool == "max" or get_kind(node.float_layer.kind).passes_values


def _shared_format(node: Node, formats, by_name: dict[str, Node]) -> TensorQuant | None:
    """The one format all of node's offloaded consumers read, made one where it can be, so
    that nothing requantizes between them and the producer (the host would, ending a run).
    8-bit inputs of different scales take the largest (none clips more than its own would;
    a consumer that passes values keeps its scale, then that one is taken), as TFLite gives a
    tensor one scale for all its readers; None when the consumers' bits differ."""
    reads = [formats[c][0][i] for c, i in node.consumers]
    if not reads:
        return None
    first = reads[0]
    if all(r.bits == first.bits and r.storage == first.storage
           and (r.bits == 1 or np.array_equal(r.scale, first.scale))
           for r in reads):  # (a sign is the same at any scale)
        return first
    if any(r.bits != 8 or np.ndim(r.scale) for r in reads):
        return None
    fixed = {float(r.scale) for (c, _), r in zip(node.consumers, reads)
             if _values_pass(by_name[c])}
    if len(fixed) > 1:
        return None
    shared = TensorQuant(8, fixed.pop() if fixed else max(float(r.scale) for r in reads))
    for c, i in node.consumers:
        formats[c][0][i] = shared
    return shared


# --- quantization --------------------------------------------------------------------------

def quantize(node: Node, ins: list[TensorQuant], out: TensorQuant) -> Layer:
    f, name = node.float_layer, node.name
    try:
        return get_kind(f.kind).quantize(f, name, node.bits[0], ins, out,
                                         per_tensor=node.per_tensor)
    except CompileError as exc:
        raise CompileError(f"layer {name}: {exc}") from None
