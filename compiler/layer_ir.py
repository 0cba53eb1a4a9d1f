"""The layer IR: the seam between the TVM import and TTA code generation.

Plain frozen dataclasses holding integer weights and the requantization of one offloaded layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.intsem import Requant


@dataclass(frozen=True, eq=False)
class Conv2d:
    """int8 NCHW convolution (groups = 1) with int32 bias; batch 1."""

    name: str
    in_shape: tuple[int, int, int]  # C, H, W
    out_shape: tuple[int, int, int]  # O, OH, OW
    weight: np.ndarray  # int8 [O, C, KH, KW]
    bias: np.ndarray  # int32 [O]
    stride: tuple[int, int]
    padding: tuple[int, int]  # top, left (bottom and right follow from the output shape)
    dilation: tuple[int, int]
    requant: Requant | None  # None: the output is the int32 accumulator
    in_scale: float  # real value of one input step
    out_scale: float  # real value of one output step (s_in * s_w when requant is None)


@dataclass(frozen=True, eq=False)
class Dense:
    """int8 matrix-vector product y = W x + b; batch 1."""

    name: str
    in_features: int
    out_features: int
    weight: np.ndarray  # int8 [O, K]
    bias: np.ndarray  # int32 [O]
    requant: Requant | None
    in_scale: float
    out_scale: float

    def as_conv(self) -> Conv2d:
        """A dense layer is a 1x1 convolution over a K x 1 x 1 input."""
        return Conv2d(self.name, (self.in_features, 1, 1), (self.out_features, 1, 1),
                      self.weight.reshape(self.out_features, self.in_features, 1, 1), self.bias,
                      (1, 1), (0, 0), (1, 1), self.requant, self.in_scale, self.out_scale)


Layer = Conv2d | Dense


def in_shape(layer: Layer) -> tuple[int, ...]:
    return layer.in_shape if isinstance(layer, Conv2d) else (layer.in_features,)


def out_shape(layer: Layer) -> tuple[int, ...]:
    return layer.out_shape if isinstance(layer, Conv2d) else (layer.out_features,)
