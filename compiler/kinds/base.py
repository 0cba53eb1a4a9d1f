"""A layer kind: everything the compiler knows of one kind of accelerator layer, in one place.

Kinds are keyed by the name their Relax composite functions carry (`tta.<name>[_suffix]`, the
pattern name is the contract, as in TVM's BYOC): the pattern table, the reader of the float layer
inside an offloaded function, its float forward (calibration), the quantizer to the layer IR,
the numpy integer reference, the fake-quantized float model and the code-generation plan. The
estimator needs nothing per kind: it counts the events of the generated instructions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import GenericConst
from tvm.relax.dpl import is_op, wildcard
from tvm.relax.transform import FusionPattern

from compiler.layer_ir import Layer, Output
from compiler.reference import finish

CODEGEN = "tta"


@dataclass(frozen=True, eq=False)
class FloatLayer:
    kind: str  # registry name
    func: str  # the offloaded Relax function
    in_shapes: tuple[tuple[int, ...], ...]  # without the batch axis
    out_shape: tuple[int, ...]
    weight: np.ndarray | None = None  # conv: OIHW; dense: [O, K]; affine: per-channel scale
    bias: np.ndarray | None = None  # affine: per-channel shift
    act: tuple | None = None  # None | ("relu",) | ("clip", lo, hi)
    strides: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)
    pool: str = ""  # "max" | "avg"
    steps: tuple = ()  # lut: the element-wise chain (`compiler.kinds.lut.Step`)
    vector_first: bool = False  # scale: the per-channel vector is the first argument


@dataclass(frozen=True)
class TensorQuant:
    bits: int  # 8, 2, 1; 32: int32 accumulators
    scale: float | np.ndarray
    # bits a value takes in its reader's memory, when not `bits` (compiler.plans.base.mac_bits:
    # an 8-bit-weight layer reads ternary values as bytes, a ternary-weight one binary values
    # as 2-bit codes)
    storage: int = 0


@dataclass(frozen=True)
class Hints:
    """What a layer's neighbours in a whole-network program read and write, for its plan."""

    row_positions: bool = False  # its consumers read one data row per position (pooling):
    #                              write positions of whole rows where no MAC trigger is added
    word_positions: bool = False  # its consumers read positions of whole words: write those
    #                               where the MAC triggers added cost less than a byte copy
    input_grid: tuple[int, int, int] | None = None  # a dense layer's flattened [C, H, W] input
    #                                    read as a grid: (rows, columns, position bits)


NO_HINTS = Hints()


class LayerKind(ABC):
    name: str
    weighted = False  # has weights quantized by the spec, named by their module path
    passes_values = False  # moves values unchanged: its inputs take its output's scale
    moves_rows = False  # its code copies rows with the vector unit (needs the zero row)
    reads_word_positions = False  # ... as positions of whole 32-bit words

    def reads_row_positions(self, layer: Layer, config) -> bool:
        """Its plan reads the input of `layer` as one data row per position."""
        return False

    @abstractmethod
    def patterns(self) -> list[FusionPattern]:
        """(name, pattern, annotations with the 'root' op, check), names `tta.<kind>...`."""

    def module_patterns(self, mod) -> list[FusionPattern]:
        """Patterns made for one module (structures found in it), tried after every kind's
        own."""
        return []

    @abstractmethod
    def read(self, func: str, calls: list[relax.Call]) -> FloatLayer:
        """The float layer inside offloaded function `func` (its op calls in order)."""

    def read_function(self, name: str, func: relax.Function) -> FloatLayer:
        """The float layer of offloaded function `name` (by default from its op calls)."""
        return self.read(name, op_calls(func))

    @abstractmethod
    def float_forward(self, f: FloatLayer, *xs: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def quantize(self, f: FloatLayer, name: str, w_bits: int, ins: list[TensorQuant],
                 out: TensorQuant, per_tensor: bool = False) -> Layer:
        """The layer IR; per_tensor: one weight scale for the layer (weighted kinds)."""

    def accumulates(self, layer: Layer) -> bool:
        """Whether the layer's output comes from accumulators through post-processing (max
        pooling passes values instead)."""
        return True

    @abstractmethod
    def accumulate(self, layer: Layer, *xs: np.ndarray) -> np.ndarray:
        """A batch of integer inputs [B, ...] -> what the vector unit holds before its
        post-processing: int64 accumulators [B, C, ...], bias included (max pooling: the
        window maxima)."""

    def output(self, layer: Layer, acc: np.ndarray, out: Output | None = None) -> np.ndarray:
        """Accumulators [B, C, ...] -> integer outputs [B, *out_shape], through the layer's
        post-processing or `out`'s (per-channel parameters [C] or [B, C])."""
        return finish(out or layer.out, acc).reshape((len(acc), *layer.out_shape))

    def reference(self, layer: Layer, *xs: np.ndarray) -> np.ndarray:
        """Integer input(s) -> integer output, shaped like the layer's output."""
        batch = [np.asarray(x)[None] for x in xs]
        return self.output(layer, self.accumulate(layer, *batch))[0]

    @abstractmethod
    def fake_quant(self, layer: Layer, *xs: np.ndarray) -> np.ndarray:
        """Float arithmetic on the quantized values of the same layer."""

    @abstractmethod
    def plan(self, index: int, layer: Layer, config, mem, host_input: bool = False,
             hints: Hints = NO_HINTS):
        """The code-generation plan (`compiler.plans`); host_input: its input is the network's,
        written by the host in any layout; hints: what its neighbours in the network read
        and write (`Hints`)."""

    def input_formats(self, layer: Layer) -> list[tuple[float, int]]:
        """(scale, bits) of each input."""
        return [(layer.in_scale, 8)]

    def in_bits(self, f: FloatLayer, act_bits: int) -> list[int]:
        """Bit widths of the inputs, given the spec's activation bits for this layer."""
        return [8] * len(f.in_shapes)

    def describe(self, layer: Layer) -> str:
        return f"{layer.in_shape} -> {layer.out_shape}"

    def manifest(self, layer: Layer) -> dict:
        return {}

    def size_bits(self, layer: Layer) -> int:
        return 0


# --- helpers the kinds share ------------------------------------------------------------------

def shape(e) -> tuple[int, ...]:
    """A tensor's shape without the batch axis."""
    return tuple(int(d) for d in e.ty.shape)[1:]


def batch_one(expr) -> bool:
    s = expr.ty.shape
    return s is not None and len(s) > 0 and int(s[0]) == 1


def with_activation(core):
    """(suffix, pattern): core, optionally followed by a ReLU or a clip (ReLU6, hardtanh)."""
    return [("_relu", is_op("relax.nn.relu")(core)),
            ("_clip", is_op("relax.clip")(core, wildcard(), wildcard())), ("", core)]


def activation(calls: list[relax.Call]) -> tuple | None:
    ops = {c.op.name: c for c in calls}
    if "relax.nn.relu" in ops:
        return ("relu",)
    if "relax.clip" in ops:
        lo, hi = (float(a.value) for a in ops["relax.clip"].args[1:3])
        return ("clip", lo, hi)
    return None


def apply_activation(y, act):
    """A torch tensor through the layer's ReLU / clip."""
    import torch
    import torch.nn.functional as F
    if act and act[0] == "relu":
        return F.relu(y)
    if act:
        return torch.clamp(y, act[1], act[2])
    return y


def const_value(e) -> np.ndarray:
    return e.value.numpy()


def is_constant(e) -> bool:
    return isinstance(e, GenericConst)


def fusion(name: str, pattern, root, check, **annotations) -> FusionPattern:
    """A pattern named `tta.<name>`; its check sees `root` (and any other annotated pattern).
    A match whose values other than its result are used outside it is refused (a conv's
    pre-activation value that ELU also reads, say): a layer has one output."""
    return FusionPattern(f"{CODEGEN}.{name}", pattern, {"root": root, **annotations},
                         lambda ctx: _one_output(ctx) and check(ctx))


def _one_output(ctx) -> bool:
    """At most one value of the match is used outside it."""
    matched = ctx.matched_bindings
    escaping = [v for v in matched.keys()
                if any(u not in matched for u in ctx.var_usages.get(v, []))]
    return len(escaping) <= 1


def op_calls(func: relax.Function) -> list[relax.Call]:
    calls: list[relax.Call] = []
    relax.analysis.post_order_visit(
        func, lambda e: calls.append(e) if isinstance(e, relax.Call)
        and isinstance(e.op, tvm.ir.Op) else None)
    return calls


def relu_like(act: tuple | None, scale: float) -> bool:
    """A ReLU, or a clip from 0 that a ternary output at `scale` cannot tell from one (it
    saturates above half a step)."""
    return bool(act) and (act[0] == "relu" or (act[1] == 0 and act[2] > scale / 2))


def sign_like(act: tuple | None) -> bool:
    """A clip around 0 (hardtanh): the sign of its output is its input's."""
    return bool(act) and act[0] == "clip" and act[1] < 0 <= act[2]


def clip_bounds(act: tuple | None, scale: float) -> tuple[int, int]:
    """int8 bounds of an output at `scale` after the layer's ReLU / clip."""
    from compiler.intsem import QMAX, QMIN
    if not act:
        return QMIN, QMAX
    if act[0] == "relu":
        return 0, QMAX
    lo = int(np.clip(np.round(act[1] / scale), QMIN, QMAX))
    hi = int(np.clip(np.round(act[2] / scale), QMIN, QMAX))
    return lo, hi


def finish_float(out, y: np.ndarray) -> np.ndarray:
    """The fake-quantized output of float values y in the layer's output format."""
    from compiler.intsem import QMAX, QMIN, quantize_act
    if out.kind == "int32":
        return y
    s_out = float(np.asarray(out.scale).ravel()[0])
    if out.kind == "int8":
        lo, hi = (out.requant.lo, out.requant.hi) if out.requant else (QMIN, QMAX)
        return np.clip(np.round(y / s_out), lo, hi) * s_out
    if getattr(out, "relu", False):  # a ternary output after a ReLU
        y = np.maximum(y, 0)
    return quantize_act(y, s_out, out.bits) * s_out
