"""The one integer semantics of quantized layers, shared by every stage.

Activations (a tensor's quantization is its bit width and one real scale s):
- 8-bit: q = clip(round_half_even(x / s), -128, 127), symmetric (zero point 0).
- ternary: q = clip(round_half_even(x / s), -1, 1) (codes: bit 0 nonzero, bit 1 negative).
- binary: q = +1 if x >= 0 else -1 (s only scales the value passed on).
Zero padding of a convolution is q = 0, except for binary inputs, which are padded with -1.

Weights, symmetric per output channel o (scale s_w[o], integer q):
- 8-bit: s_w = max|w_o| / 127, q = clip(round(w / s_w), -127, 127).
- ternary (TWN): threshold t = 0.7 mean|w_o|, q = sign(w) where |w| > t else 0,
  s_w = mean |w| over |w| > t.
- binary: q = +1 if w >= 0 else -1, s_w = mean|w_o|.
Each is invariant to a positive per-channel factor, so folding batch norm into the float weights
before quantizing gives the same integers as quantizing first and scaling after.

Bias: int32, q = round(b / (s_in * s_w[o])), added to the int32 accumulator.

Requantization of an accumulator v (bias included) to an 8-bit output, per channel o:
      t = floor((v * m[o] + 2**31) / 2**32)    (m a Q31 multiplier in [2**30, 2**31))
      y = (t + (2**shift[o] >> 1)) >> shift[o]  (round half up, arithmetic shift)
      y = clip(y, lo, hi)                      (lo = 0 after a ReLU; hi < 127 for a clip)
so y ~ v * s_in * s_w[o] / s_out, rounded twice like gemmlowp / TFLite. Scales >= 0.5 (an
output step finer than two accumulator steps, e.g. after binary layers) use a negative shift:
t = floor(((v * m[o]) << -shift[o]) + 2**31) / 2**32) with the product wrapping at 64 bits.
To a ternary output: +1 if v > thr[o], -1 if v < -thr[o], else 0, thr = floor(s_out / 2 /
(s_in s_w[o])); to a binary output: +1 if v >= 0 else -1. The accelerator's post-processing
unit computes exactly these (hw/ISA.md: rq, ter, bin).

The torch fake-quant modules (codesign.quant) use the same rounding and ranges.

TFLite's rounding (models that carry their own quantization, `compiler.tflite`): the same
multiplier and shift rounded as the TFLite reference kernels do (`Requant.rounding = "tflite"`):
      x = v << -shift  (int32 wrap; shift < 0 only)
      t = SaturatingRoundingDoublingHighMul(x, m) = round(x * m / 2**31), ties up
      y = RoundingDivideByPOT(t, shift) = round_half_away(t / 2**shift)   (shift >= 0)
then the output zero point is added and the result clipped. Activations then carry a zero point
(real = s * (q - zp)); a layer folds its input's -zp * sum(w) into its bias and pads with zp.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from compiler.errors import CompileError, CompileWarning

QMIN, QMAX = -128, 127
INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
WMAX = 127
BITS = (1, 2, 8)
TERNARY_THRESHOLD = 0.7  # of mean |w|: the TWN rule


def check_bits(bits: int, what: str) -> int:
    if bits not in BITS:
        raise CompileError(f"{what}: {bits} bits; allowed: 1 (binary), 2 (ternary), 8")
    return bits


# --- activations ---------------------------------------------------------------------------

def act_range(bits: int) -> tuple[int, int]:
    return {8: (QMIN, QMAX), 2: (-1, 1), 1: (-1, 1)}[bits]


def quantize_act(x: np.ndarray, scale: float, bits: int = 8) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if bits == 1:
        return np.where(x >= 0, 1, -1).astype(np.int8)
    lo, hi = act_range(bits)
    return np.clip(np.round(x / scale), lo, hi).astype(np.int8)


def quantize_activation(x: np.ndarray, scale: float) -> np.ndarray:
    return quantize_act(x, scale, 8)


def act_scale(amax: float, mean_abs: float, bits: int) -> float:
    """The scale of a tensor from calibration statistics (max and mean of |x|)."""
    if bits == 8:
        return amax / QMAX if amax > 0 else 1.0 / QMAX
    if bits == 2:  # levels -s, 0, s: s = 2 mean|x| puts the threshold s/2 at the mean
        return 2 * mean_abs if mean_abs > 0 else 1.0
    return mean_abs if mean_abs > 0 else 1.0


def pad_value(bits: int) -> int:
    """The integer a convolution's zero padding stands for, by input bit width."""
    return -1 if bits == 1 else 0


# --- weights -------------------------------------------------------------------------------

def weight_scale(w: np.ndarray) -> float:
    """Per-tensor 8-bit scale (kept for element-wise constants)."""
    m = float(np.max(np.abs(w)))
    return m / WMAX if m > 0 else 1.0


def quantize_weight(w: np.ndarray, scale) -> np.ndarray:
    return np.clip(np.round(np.asarray(w, np.float64) / scale), -WMAX, WMAX).astype(np.int8)


def quantize_weights(w: np.ndarray, bits: int,
                     per_tensor: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric quantization (axis 0): (integers int8, scales float64);
    per_tensor: one scale (and ternary threshold) for the whole tensor, repeated per channel."""
    w = np.asarray(w, np.float64)
    if per_tensor:
        q, s = quantize_weights(w.reshape(1, -1), bits)
        return q.reshape(w.shape), np.full(len(w), s[0])
    flat = np.abs(w.reshape(len(w), -1))
    shape = (-1,) + (1,) * (w.ndim - 1)
    if bits == 8:
        m = flat.max(axis=1)
        scale = np.where(m > 0, m / WMAX, 1.0)
        return quantize_weight(w, scale.reshape(shape)), scale
    if bits == 2:
        t = TERNARY_THRESHOLD * flat.mean(axis=1)
        keep = flat > t[:, None]
        n = keep.sum(axis=1)
        scale = np.where(n > 0, (flat * keep).sum(axis=1) / np.maximum(n, 1), 1.0)
        q = np.sign(w) * (np.abs(w) > t.reshape(shape))
        return q.astype(np.int8), scale
    m = flat.mean(axis=1)
    return np.where(w >= 0, 1, -1).astype(np.int8), np.where(m > 0, m, 1.0)


def quantize_bias(b: np.ndarray, in_scale: float, w_scale, layer: str = "") -> np.ndarray:
    """int32 bias in accumulator units; values past int32 saturate (as TFLite does), with a
    warning naming the layer."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.round(np.asarray(b, np.float64) / (in_scale * np.asarray(w_scale, np.float64)))
    q = np.nan_to_num(q, nan=0.0)
    big = np.abs(q) > 2**31 - 1
    if np.any(big):
        warnings.warn(CompileWarning(
            f"layer {layer or '?'}: bias of {int(big.sum())} channel(s) does not fit int32 at "
            f"this input and weight scale; saturated"), stacklevel=2)
    return np.clip(q, -(2**31 - 1), 2**31 - 1).astype(np.int32)


# --- outputs -------------------------------------------------------------------------------

def fixed_point(real_scale: float) -> tuple[int, int]:
    if not real_scale > 0:
        raise CompileError(f"requantization scale {real_scale:g} must be > 0")
    mantissa, exponent = math.frexp(real_scale)  # real = mantissa * 2**exponent, m in [.5, 1)
    multiplier = round(mantissa * 2**31)
    shift = -exponent - 1
    if multiplier == 2**31:
        multiplier, shift = 2**30, shift - 1
    if not -32 <= shift <= 31:
        raise CompileError(f"requantization scale {real_scale:g} needs a shift of {shift}; "
                           f"the accelerator's shifter takes -32 .. 31")
    return multiplier, shift


def tflite_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: (Q31 multiplier, shift) with shift in this project's
    convention (> 0: a right shift), so that real ~ m * 2**-(31 + shift)."""
    if real == 0 or not math.isfinite(real):
        return 0, 0
    mantissa, exponent = math.frexp(real)
    q = math.floor(mantissa * 2**31 + 0.5)  # std::round: half away from zero (q > 0)
    if q == 2**31:
        q, exponent = q // 2, exponent + 1
    if exponent < -31:  # below 2**-32: every result would be zero, as TFLite flushes it
        return 0, 0
    if exponent > 31:
        raise CompileError(f"requantization scale {real:g} needs a left shift of {exponent}; "
                           f"the accelerator's shifter takes at most 32")
    return q, -exponent


def srdhm(a, b) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values: round(a * b / 2**31), ties
    toward +inf (the nudge, then C's division toward zero); -2**31 * -2**31 saturates."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    s = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    t = np.where(s >= 0, s >> 31, -((-s) >> 31))  # C's division: toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, t)


def rdbpot(x, exponent) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent rounded half away from zero."""
    x, e = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + ((x & mask) > threshold)


def tflite_scale(v, multiplier, shift) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier, shift in this project's convention (< 0: a left
    shift of v first, wrapping at 32 bits)."""
    shift = np.asarray(shift, np.int64)
    x = wrap32(np.asarray(v, np.int64) << np.maximum(-shift, 0))
    return rdbpot(srdhm(x, multiplier), np.maximum(shift, 0))


def single_round(v, multiplier, shift) -> np.ndarray:
    """TFLite's single-rounding MultiplyByQuantizedMultiplier (its FULLY_CONNECTED reference
    kernel): (v * m + 2**(30 + shift)) >> (31 + shift), one rounding, ties up."""
    total = np.maximum(31 + np.asarray(shift, np.int64), 0)
    return wrap32((np.asarray(v, np.int64) * np.asarray(multiplier, np.int64)
                   + ((np.int64(1) << total) >> 1)) >> total)  # static_cast<int32_t>


@dataclass(frozen=True, eq=False)
class Requant:
    """int32 accumulators (bias included) -> int8, per channel (see the module docstring)."""

    multiplier: np.ndarray  # int64 [O], Q31 in [2**30, 2**31)
    shift: np.ndarray  # int64 [O], 0 .. 31
    lo: int = QMIN
    hi: int = QMAX
    zero_point: int = 0  # added after scaling, before the clip
    rounding: str = "double"  # "double": this project's; "tflite": TFLite's (gemmlowp's two
    #                           roundings); "single": TFLite's single rounding

    @classmethod
    def from_scale(cls, real_scale, relu: bool = False, hi: int = QMAX) -> "Requant":
        pairs = [fixed_point(float(s)) for s in np.atleast_1d(real_scale)]
        return cls(np.array([m for m, _ in pairs], np.int64),
                   np.array([s for _, s in pairs], np.int64), 0 if relu else QMIN, hi)

    @property
    def relu(self) -> bool:
        return self.lo == 0

    def cfg(self) -> int:
        """The vector unit's cfg word for `rq` (hw/ISA.md): clip bounds, zero point, rounding."""
        return (self.lo & 0xFF) | (self.hi & 0xFF) << 8 | (self.zero_point & 0xFF) << 24 \
            | int(self.rounding == "tflite") << 19 | int(self.rounding == "single") << 20

    def apply(self, acc: np.ndarray, axis: int = 0) -> np.ndarray:
        """Requantize accumulators whose channel axis is `axis`."""
        acc = np.asarray(acc, np.int64)
        m = per_channel(self.multiplier, acc, axis)
        s = per_channel(self.shift, acc, axis)
        if self.rounding == "tflite":
            y = tflite_scale(wrap32(acc), m, s)
        elif self.rounding == "single":
            y = single_round(wrap32(acc), m, s)
        else:
            left, right = np.maximum(-s, 0), np.maximum(s, 0)
            t = (((acc * m) << left) + (1 << 31)) >> 32
            y = np.where(s < 0, t, (t + ((1 << right) >> 1)) >> right)
        return np.clip(y + self.zero_point, self.lo, self.hi).astype(np.int8)


def ternary_thresholds(out_scale: float, acc_scale: np.ndarray) -> np.ndarray:
    """Accumulator thresholds of a ternary output: half an output step, rounded down."""
    thr = np.floor(out_scale / 2 / np.asarray(acc_scale, np.float64))
    if np.any(thr >= 2**31):
        raise CompileError("ternary threshold does not fit int32")
    return thr.astype(np.int64)


def wrap32(a: np.ndarray) -> np.ndarray:
    return ((np.asarray(a, np.int64) + 2**31) % 2**32) - 2**31


def binarize(v: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(v) >= 0, 1, -1).astype(np.int8)


def per_channel(p, v: np.ndarray, axis: int) -> np.ndarray:
    """Per-channel parameters shaped to broadcast against v, whose channel axis is `axis`: one
    set [C] (or a scalar), or one set per batch item [B, C] (axis 1)."""
    p = np.asarray(p, np.int64)
    shape = [1] * v.ndim
    if p.ndim == 2:
        shape[0], shape[axis] = p.shape
        return p.reshape(shape)
    shape[axis] = -1
    return np.broadcast_to(p, (v.shape[axis],)).reshape(shape)


def ternarize(v: np.ndarray, thr: np.ndarray, axis: int = 0) -> np.ndarray:
    v = np.asarray(v, np.int64)
    t = per_channel(thr, v, axis)
    return np.where(v > t, 1, np.where(v < -t, -1, 0)).astype(np.int8)
