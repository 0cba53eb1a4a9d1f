"""The pattern table of quantized (QDQ) graphs, as TVM's TFLite frontend writes them: each
accelerator layer is a float op between dequantize and quantize, its integers the constants
the dequantize ops read. Longest patterns first (a bias and a clip are optional parts).

Composite names: `tta.q<layer>` for the accelerator, `host.q<op>` for the integer kernels the
host runs as TFLite does (`compiler.hostkernels`).
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard
from tvm.relax.transform import FusionPattern

from compiler.kinds import CODEGEN

from compiler.hostkernels import HOST_CODEGEN


def _dq(x):
    return is_op("relax.dequantize")(x, is_const(), is_const())


def _q(x):
    return is_op("relax.quantize")(x, is_const(), is_const())


def _clipped(x):
    return [is_op("relax.clip")(x, wildcard(), wildcard()), x]


def _weighted(name: str, core, *, reshaped_input: bool = False) -> list[FusionPattern]:
    bias = _dq(is_const())
    biased = [is_op("relax.add")(core, bias), is_op("relax.add")(bias, core), core]
    return [FusionPattern(f"{CODEGEN}.{name}", out, {"root": core})
            for b in biased for out in _clipped(_q(b))]


def qdq_patterns() -> list[FusionPattern]:
    x = wildcard()
    w = _dq(is_const())
    conv_w = w | is_op("relax.reshape")(w, wildcard())  # depthwise: (1, KH, KW, C*M) reshaped
    conv = is_op("relax.nn.conv2d")(_dq(x), conv_w)
    dense_w = _dq(is_op("relax.permute_dims")(is_const())) | w
    dense_in = _dq(is_op("relax.reshape")(wildcard(), wildcard())) | _dq(wildcard())
    dense = is_op("relax.matmul")(dense_in, dense_w)
    a, b = _dq(wildcard()), _dq(wildcard())
    add = is_op("relax.add")(a, b)
    adds = [add_out for s in (is_op("relax.nn.relu")(add), add) for add_out in _clipped(_q(s))]
    avg = is_op("relax.astype")(is_op("relax.nn.avg_pool2d")(is_op("relax.astype")(wildcard())))
    maxp = is_op("relax.nn.max_pool2d")(wildcard())
    softmax = _q(is_op("relax.nn.softmax")(_dq(wildcard())))  # checked: 1/256 from -128
    quantize = _q(wildcard())  # what is left of them: float inputs quantized on the host
    return [*_weighted("qconv2d", conv), *_weighted("qdense", dense),
            *[FusionPattern(f"{CODEGEN}.qadd", p, {"root": add}) for p in adds],
            FusionPattern(f"{CODEGEN}.qavgpool", avg, {"root": avg}),
            *[FusionPattern(f"{CODEGEN}.qmaxpool", p, {"root": maxp}) for p in _clipped(maxp)],
            FusionPattern(f"{HOST_CODEGEN}.qsoftmax", softmax, {"root": softmax},
                          _check_softmax),
            FusionPattern(f"{HOST_CODEGEN}.qquantize", quantize, {"root": quantize},
                          _check_quantize)]


def _check_quantize(ctx) -> bool:
    """A QUANTIZE of float values to int8 (a float model input's), one scale."""
    q = ctx.annotated_expr["root"]
    return str(q.args[0].ty.dtype) == "float32" and str(q.ty.dtype) == "int8" and \
        q.args[1].value.numpy().size == 1


def _check_softmax(ctx) -> bool:
    """TFLite's int8 softmax writes steps of 1/256 from -128 (else TVM's float op runs)."""
    q = ctx.annotated_expr["root"]
    scale = float(q.args[1].value.numpy())
    return int(q.args[2].value.numpy()) == -128 and abs(scale - 1 / 256) < 1e-9


def partition_qdq(mod: tvm.IRModule) -> tvm.IRModule:
    from compiler.partition import unshare_calls
    return unshare_calls(relax.transform.FuseOpsByPattern(
        qdq_patterns(), bind_constants=True, annotate_codegen=True)(mod))
