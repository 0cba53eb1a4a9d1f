"""The layer IR: the seam between the TVM import and TTA code generation.

Plain frozen dataclasses holding the integers of one offloaded layer: its weights, its input and
output bit widths, and how its int32 accumulators become its output (`Output`). Shapes are CHW
without the batch axis (batch 1). `kind` names the layer's entry in the registry of layer kinds
(`compiler.kinds`), which knows every stage of it; `in_grid` is the input as (C, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.intsem import Requant, pad_value

OUTPUT_KINDS = ("int8", "ternary", "binary", "int32")


@dataclass(frozen=True, eq=False)
class Output:
    """int32 accumulators -> the layer's output."""

    kind: str  # one of OUTPUT_KINDS
    scale: np.ndarray  # real value of one output step, per channel (int32: s_in * s_w[o])
    requant: Requant | None = None  # int8; None: values pass unchanged (max pooling)
    thresholds: np.ndarray | None = None  # ternary: per channel
    relu: bool = False  # ternary after a ReLU: no -1

    @property
    def bits(self) -> int:
        return {"int8": 8, "ternary": 2, "binary": 1, "int32": 32}[self.kind]


@dataclass(frozen=True, eq=False)
class Conv2d:
    """Convolution with integer weights of `w_bits` on inputs of `a_bits`; int32 bias."""

    name: str
    in_shape: tuple[int, int, int]  # C, H, W
    out_shape: tuple[int, int, int]  # O, OH, OW
    weight: np.ndarray  # int8 [O, C / groups, KH, KW], values in the w_bits range
    bias: np.ndarray  # int32 [O]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, left, bottom, right
    dilation: tuple[int, int]
    groups: int
    w_bits: int
    a_bits: int
    in_scale: float
    out: Output
    source: str = ""  # where it came from (module path / Relax function)
    w_scale: np.ndarray | None = None  # real value of one weight step, per output channel
    in_zero: int = 0  # the input's zero point (TFLite): the padding holds it, and the bias
    #                   already holds -in_zero * sum(w) of each output channel

    @property
    def pad_fill(self) -> int:
        """The integer the padding holds: the input's zero point (0 in this project's own
        symmetric format), -1 for binary inputs (zero is no binary value)."""
        return self.in_zero if self.a_bits == 8 else pad_value(self.a_bits)

    @property
    def kernel(self) -> tuple[int, int]:
        return tuple(self.weight.shape[2:])

    @property
    def depthwise(self) -> bool:
        """One filter per input channel (groups = C = O): the element-wise form runs it."""
        return self.groups > 1 and self.groups == self.in_shape[0] == self.out_shape[0]

    @property
    def kind(self) -> str:
        return "depthwise_conv2d" if self.depthwise else "conv2d"

    @property
    def in_grid(self) -> tuple[int, int, int]:
        return self.in_shape

    def dense_weight(self) -> np.ndarray:
        """[O, C, KH, KW] with the zeros of a grouped convolution spelled out."""
        if self.groups == 1:
            return self.weight
        o, cg, kh, kw = self.weight.shape
        full = np.zeros((o, cg * self.groups, kh, kw), np.int8)
        per_group = o // self.groups
        for oc in range(o):
            g = oc // per_group
            full[oc, g * cg:(g + 1) * cg] = self.weight[oc]
        return full


@dataclass(frozen=True, eq=False)
class Dense:
    """y = W x + b on a flattened input (any input shape, flattened in CHW order)."""

    name: str
    in_shape: tuple[int, ...]
    out_features: int
    weight: np.ndarray  # int8 [O, K]
    bias: np.ndarray  # int32 [O]
    w_bits: int
    a_bits: int
    in_scale: float
    out: Output
    source: str = ""
    w_scale: np.ndarray | None = None
    in_zero: int = 0  # the input's zero point (TFLite; the bias holds -in_zero * sum(w))

    kind = "dense"

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.out_features,)

    @property
    def in_grid(self) -> tuple[int, int, int]:
        return (int(np.prod(self.in_shape)), 1, 1)

    def as_conv(self) -> Conv2d:
        """A dense layer is a 1x1 convolution over a K x 1 x 1 input."""
        k = int(np.prod(self.in_shape))
        return Conv2d(self.name, (k, 1, 1), (self.out_features, 1, 1),
                      self.weight.reshape(self.out_features, k, 1, 1), self.bias, (1, 1),
                      (0, 0, 0, 0), (1, 1), 1, self.w_bits, self.a_bits, self.in_scale,
                      self.out, self.source, self.w_scale, self.in_zero)


@dataclass(frozen=True, eq=False)
class Pool:
    """Max or average pooling of an int8 tensor (global pooling: the kernel is the input)."""

    name: str
    op: str  # "max" | "avg"
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # max pads with -128 (never wins), avg with 0
    in_scale: float
    out: Output  # int8; max: identity (same scale), avg: sum * m / 2**(32 + shift)
    source: str = ""
    clip: tuple[int, int] = (-128, 127)  # max: the bounds of a ReLU / clip fused after it

    kind = "pool"

    @property
    def in_grid(self) -> tuple[int, int, int]:
        return self.in_shape


@dataclass(frozen=True)
class Rescale:
    """How TFLite's ADD scales one input before the sum: ((q + offset) << left_shift) times a
    Q31 multiplier, rounded as TFLite rounds (`intsem.tflite_scale`; the vector unit's rsc)."""

    offset: int  # minus the input's zero point
    multiplier: int
    shift: int  # this project's convention: > 0 a right shift
    left_shift: int = 20

    def apply(self, q: np.ndarray) -> np.ndarray:
        from compiler.intsem import tflite_scale, wrap32
        return tflite_scale(wrap32((np.asarray(q, np.int64) + self.offset) << self.left_shift),
                            self.multiplier, self.shift)


@dataclass(frozen=True, eq=False)
class Add:
    """Element-wise sum of two int8 tensors: requant(a * ka + b * kb) (residual connections),
    or, with `rescale` (TFLite's ADD), requant(rescale[0](a) + rescale[1](b))."""

    name: str
    shape: tuple[int, int, int]
    ka: int
    kb: int
    a_scale: float
    b_scale: float
    out: Output  # int8
    source: str = ""
    rescale: tuple[Rescale, Rescale] | None = None

    kind = "add"

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return self.shape

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.shape

    @property
    def in_grid(self) -> tuple[int, int, int]:
        return self.shape


class _Elementwise:
    """A layer whose output has its input's shape: held as C, H, W (`shape`), its own
    shape `dims` when that is not C, H, W (a dense layer's vector)."""

    shape: tuple[int, int, int]
    dims: tuple[int, ...]

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.dims or self.shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.dims or self.shape

    @property
    def in_grid(self) -> tuple[int, int, int]:
        return self.shape


@dataclass(frozen=True, eq=False)
class Affine(_Elementwise):
    """A per-channel scale and shift of an int8 tensor (a batch norm with no conv or dense
    before it to fold into): out = requant(x + bias[c]) with a per-channel, possibly negative,
    multiplier."""

    name: str
    shape: tuple[int, int, int]
    bias: np.ndarray  # int32 [C], in units of the input scale
    in_scale: float
    out: Output  # int8, per-channel requantization
    source: str = ""
    dims: tuple[int, ...] = ()  # the tensor's own shape when it is not C, H, W (C of a dense)

    kind = "affine"


@dataclass(frozen=True, eq=False)
class Resize:
    """Nearest-neighbour upsampling by whole factors: output (c, y, x) is input
    (c, y // fy, x // fx). Values pass unchanged: one scale in and out."""

    name: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    in_scale: float
    out: Output  # int8, no requantization (values pass)
    source: str = ""

    kind = "resize"

    @property
    def factor(self) -> tuple[int, int]:
        return (self.out_shape[1] // self.in_shape[1], self.out_shape[2] // self.in_shape[2])

    @property
    def in_grid(self) -> tuple[int, int, int]:
        return self.in_shape


@dataclass(frozen=True, eq=False)
class Bilinear(Resize):
    """Bilinear upsampling by whole factors with half-pixel centres (PyTorch's
    align_corners=False; edges clamped): each output is a weighted sum of at most 4 inputs with
    integer weights over D = 4 * fy * fx, requantized (`out.requant` takes the 1 / D)."""

    kind = "bilinear"


def bilinear_taps(s: int) -> list[list[tuple[int, int]]]:
    """Per output phase r (0..s-1) along one axis: (input offset, integer weight over 2s) of
    the taps with nonzero weight; output s*i + r reads input i + offset (clamped)."""
    taps = []
    for r in range(s):
        num = 2 * r + 1 - s  # the source coordinate's offset from i, in units of 1 / (2s)
        a0 = num // (2 * s)
        f = num - 2 * s * a0  # the weight of a0 + 1
        taps.append([(a, w) for a, w in ((a0, 2 * s - f), (a0 + 1, f)) if w])
    return taps


@dataclass(frozen=True, eq=False)
class Concat:
    """Channel concatenation of int8 tensors of one height and width. Values pass unchanged:
    every input has the output's scale (their producers requantize to it)."""

    name: str
    in_shapes: tuple[tuple[int, int, int], ...]
    out_shape: tuple[int, int, int]
    in_scale: float
    out: Output  # int8, no requantization (values pass)
    source: str = ""

    kind = "concat"

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return self.out_shape

    @property
    def in_grid(self) -> tuple[int, int, int]:
        return self.out_shape

    @property
    def in_grids(self) -> tuple[tuple[int, int, int], ...]:
        return self.in_shapes

    @property
    def offsets(self) -> tuple[int, ...]:
        """The output channel each input starts at."""
        return tuple(int(x) for x in np.cumsum([0] + [s[0] for s in self.in_shapes[:-1]]))


@dataclass(frozen=True, eq=False)
class Lut(_Elementwise):
    """An element-wise function of one int8 tensor through the vector unit's lookup table:
    y = table[x] (indexed by x's byte, unsigned), the table computed from the function and
    the input's and output's scales."""

    name: str
    shape: tuple[int, int, int]  # the tensor as C, H, W
    table: np.ndarray  # int8 [256]
    in_scale: float
    out: Output  # int8; the table holds the requantization
    source: str = ""
    dims: tuple[int, ...] = ()  # the tensor's own shape when it is not C, H, W

    kind = "lut"


@dataclass(frozen=True, eq=False)
class Scale:
    """A feature map times a per-channel vector computed at run time (squeeze-and-excitation's
    gate): out = requant(x[c, y, x] * s[c])."""

    name: str
    shape: tuple[int, int, int]  # x's C, H, W
    x_scale: float
    s_scale: float
    out: Output  # int8
    source: str = ""
    vector_first: bool = False  # s is input 0 (the model wrote s * x)

    kind = "scale"

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return self.shape

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.shape

    @property
    def in_grid(self) -> tuple[int, int, int]:
        return self.shape

    @property
    def in_grids(self) -> tuple[tuple[int, int, int], ...]:
        grids = self.shape, (self.shape[0], 1, 1)
        return grids[::-1] if self.vector_first else grids


def input_grid(layer, k: int) -> tuple[int, int, int]:
    """Input k's (C, H, W): one grid for all inputs but a concatenation's."""
    grids = getattr(layer, "in_grids", None)
    return tuple(grids[k]) if grids else layer.in_grid


Layer = Conv2d | Dense | Pool | Add | Affine | Resize | Bilinear | Concat | Lut | Scale
