"""Integer kernels the host runs for operators the accelerator lacks, exactly as TFLite's
reference kernels compute them (so a model's last SOFTMAX stays bit-exact with LiteRT).

QUANTIZE float -> int8 rounds half away from zero in float32 (TVM's quantize rounds ties to even).
SOFTMAX int8 -> int8 follows `reference_ops::Softmax` on gemmlowp's fixed point: the input
difference to the row maximum scaled by beta * input scale (Q5.26), exp on negative values (a
Taylor polynomial on [-1/4, 0) and a barrel shifter of exp(-2^k) constants), the sum in Q12.19,
its reciprocal by Newton-Raphson, the output in steps of 1/256 from -128.
"""

from __future__ import annotations

import math

import numpy as np
import tvm
from tvm import relax

from compiler.errors import CompileError
from compiler.intsem import INT32_MAX, INT32_MIN, rdbpot, srdhm, tflite_multiplier, wrap32

_SCALED_DIFF_BITS, _ACCUM_BITS = 5, 12


def _shl_saturating(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX,
                    np.where(x < -threshold, INT32_MIN, wrap32(x << exponent)))


def _exp_quarter(a: np.ndarray) -> np.ndarray:
    """exp(a) for Q0.31 a in [-1/4, 0): a Taylor expansion around -1/8."""
    constant_term, one_third = 1895147668, 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    poly = rdbpot(wrap32(srdhm(wrap32(rdbpot(x4, 2) + x3), one_third) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


def _exp_negative(a: np.ndarray) -> np.ndarray:
    """exp(a) in Q0.31 for Q5.26 a <= 0 (gemmlowp's exp_on_negative_values)."""
    frac = 31 - _SCALED_DIFF_BITS
    quarter = 1 << (frac - 2)
    a_mod = wrap32((a & (quarter - 1)) - quarter)
    result = _exp_quarter(_shl_saturating(a_mod, _SCALED_DIFF_BITS))
    remainder = wrap32(a_mod - a)
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084),
                                 (1, 290630308), (2, 39332535), (3, 720401), (4, 242)):
        hit = (remainder & (1 << (frac + exponent))) != 0
        result = np.where(hit, srdhm(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def _reciprocal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GetReciprocal of a positive Q12.19 sum: (Q0.31 1 / (1 + frac), bits over one)."""
    u = np.asarray(x, np.int64) & 0xFFFFFFFF
    headroom = np.array([32 - int(v).bit_length() for v in u.ravel()], np.int64).reshape(u.shape)
    over = _ACCUM_BITS - headroom
    shifted = wrap32(((u << headroom) & 0xFFFFFFFF) - (1 << 31))
    total = shifted + INT32_MAX  # RoundingHalfSum(a, One)
    half = (total + np.where(total >= 0, 1, -1))
    half = np.where(half >= 0, half // 2, -((-half) // 2))
    x2 = wrap32(1515870810 + srdhm(half, -1010580540))  # Q2.29: 48/17 - 32/17 d
    for _ in range(3):
        err = wrap32((1 << 29) - srdhm(half, x2))
        x2 = wrap32(x2 + _shl_saturating(srdhm(x2, err), 2))
    return _shl_saturating(x2, 1), over


def softmax_params(input_scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    """(multiplier, left shift, diff_min) of TFLite's PreprocessSoftmaxScaling."""
    real = min(float(beta) * float(input_scale) * (1 << (31 - _SCALED_DIFF_BITS)),
               (1 << 31) - 1.0)
    multiplier, shift = tflite_multiplier(real)
    left = -shift
    radius = math.floor(((1 << _SCALED_DIFF_BITS) - 1) * (1 << (31 - _SCALED_DIFF_BITS))
                        / (1 << left))
    return multiplier, left, -radius


def softmax_int8(x: np.ndarray, input_scale: float, beta: float = 1.0) -> np.ndarray:
    """int8 softmax over the last axis, output scale 1/256 and zero point -128."""
    multiplier, left, diff_min = softmax_params(input_scale, beta)
    x = np.asarray(x, np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    live = diff >= diff_min
    scaled = srdhm(wrap32(diff << left), multiplier)
    exps = np.where(live, _exp_negative(scaled), 0)
    sums = wrap32(np.sum(rdbpot(exps, _ACCUM_BITS) * live, axis=-1, keepdims=True))
    scale, over = _reciprocal(sums)
    out = rdbpot(srdhm(scale, exps), over + 31 - 8) - 128
    return np.where(live, np.clip(out, -128, 127), -128).astype(np.int8)


def quantize_int8(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """QUANTIZE float -> int8 as TFLite's reference (AffineQuantize): round(x / scale), half away
    from zero, in float32, plus the zero point, clamped."""
    v = np.asarray(x, np.float32) / np.float32(scale)
    q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))  # std::round
    return np.clip(q.astype(np.int64) + int(zero_point), -128, 127).astype(np.int8)


HOST_CODEGEN = "host"  # the Codegen of partitioned functions these kernels run


def host_kernels(mod: tvm.IRModule) -> dict[str, object]:
    """A callable (int8 inputs -> int8 output, batch axis dropped) for every function of `mod`
    partitioned for the host's integer kernels (composite `host.q<op>`)."""
    from compiler.partition import composite_name
    kernels = {}
    for gv, func in mod.functions.items():
        if not (isinstance(func, relax.Function) and func.attrs
                and func.attrs.get("Codegen") == HOST_CODEGEN):
            continue
        composite = composite_name(func)
        calls = {c.op.name: c for c in _calls(func)}
        if composite == f"{HOST_CODEGEN}.qsoftmax":
            scale = float(calls["relax.dequantize"].args[1].value.numpy())
            kernels[gv.name_hint] = lambda x, s=scale: softmax_int8(x, s)
        elif composite == f"{HOST_CODEGEN}.qquantize":
            q = calls["relax.quantize"]
            scale, zp = (q.args[k].value.numpy().reshape(-1) for k in (1, 2))
            if scale.size != 1:
                raise CompileError(f"{gv.name_hint}: a per-axis QUANTIZE of float inputs")
            kernels[gv.name_hint] = lambda x, s=scale[0], z=zp[0]: quantize_int8(x, s, z)
        else:
            raise CompileError(f"no host kernel for {composite!r} ({gv.name_hint})")
    return kernels


def _calls(func) -> list:
    found = []
    relax.analysis.post_order_visit(
        func, lambda e: found.append(e) if isinstance(e, relax.Call)
        and isinstance(e.op, tvm.ir.Op) else None)
    return found
