"""The one integer semantics of quantized layers, shared by every stage.

- Activations: int8, symmetric (zero point 0), q = clip(round_half_even(x / s), -128, 127).
- Weights: int8, symmetric per tensor, s_w = max|w| / 127, q = clip(round(w / s_w), -127, 127).
- Bias: int32, q = round(b / (s_in * s_w)), added to the int32 accumulator.
- Requantization of an accumulator to the next layer's int8 scale, as the TTA computes it:
      t = floor((acc * m + 2**31) / 2**32)    (ALU mulhr, m a Q31 multiplier in [2**30, 2**31))
      y = (t + (2**shift >> 1)) >> shift     (round half up, arithmetic shift)
      y = clip(y, 0 if relu else -128, 127)
  so that y ~ acc * s_in * s_w / s_out = acc * m / 2**(32 + shift), rounded twice like
  gemmlowp / TFLite (rounding high multiply, then rounding shift).

The torch fake-quant modules (codesign.quant) use the same rounding and ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compiler.errors import CompileError

QMIN, QMAX = -128, 127
WMAX = 127


def quantize_activation(x: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float64) / scale), QMIN, QMAX).astype(np.int8)


def weight_scale(w: np.ndarray) -> float:
    m = float(np.max(np.abs(w)))
    return m / WMAX if m > 0 else 1.0


def quantize_weight(w: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.round(np.asarray(w, np.float64) / scale), -WMAX, WMAX).astype(np.int8)


def quantize_bias(b: np.ndarray, in_scale: float, w_scale: float) -> np.ndarray:
    q = np.round(np.asarray(b, np.float64) / (in_scale * w_scale))
    if np.any(np.abs(q) >= 2**31):
        raise CompileError("bias does not fit int32 at this input and weight scale")
    return q.astype(np.int32)


@dataclass(frozen=True)
class Requant:
    """int32 accumulator -> int8 output (see the module docstring)."""

    multiplier: int  # Q31, in [2**30, 2**31)
    shift: int  # >= 0
    relu: bool

    @classmethod
    def from_scale(cls, real_scale: float, relu: bool) -> "Requant":
        if not 0 < real_scale < 0.5:
            raise CompileError(f"requantization scale {real_scale:g} is outside (0, 0.5); "
                               f"the accelerator's fixed-point requantizer cannot express it")
        mantissa, exponent = math.frexp(real_scale)  # real = mantissa * 2**exponent, m in [.5, 1)
        multiplier = round(mantissa * 2**31)
        shift = -exponent - 1
        if multiplier == 2**31:
            multiplier, shift = 2**30, shift - 1
        if shift < 0:
            raise CompileError(f"requantization scale {real_scale:g} needs a negative shift")
        return cls(multiplier, shift, relu)

    @property
    def rounding(self) -> int:
        return (1 << self.shift) >> 1

    @property
    def lower(self) -> int:
        return 0 if self.relu else QMIN

    def apply(self, acc: np.ndarray) -> np.ndarray:
        acc = np.asarray(acc, np.int64)
        t = (acc * self.multiplier + (1 << 31)) >> 32
        y = (t + self.rounding) >> self.shift
        return np.clip(y, self.lower, QMAX).astype(np.int8)
