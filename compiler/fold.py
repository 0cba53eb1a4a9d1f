"""Relax rewrites before partitioning, whatever the model's source (`.pt2`, `file.py:Name`, the
search's models): batch norm folded into the conv or dense layer before it, explicit zero
padding (`F.pad`, TF-style asymmetric 'same') folded into the following convolution, and
bindings canonicalized so that a ReLU after a max pooling fuses with it.

Inference batch norm y = (x - mean) * g / sqrt(var + eps) + beta after W x + b is
(W s) x + ((b - mean) s + beta) with s = g / sqrt(var + eps), per output channel; the weight
quantizers are invariant to a per-channel factor, so quantizing after folding gives the same
integers as folding after quantizing. A batch norm with nothing to fold into stays and runs as a
per-channel affine layer (`compiler.kinds.rows.AffineKind`). The folded weights remember the
module weights they came from (`Folded.origins`), which name the layer for the quantization
spec.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, is_tuple_get_item, rewrite_call, wildcard

_CONV_ATTRS = ("strides", "padding", "dilation", "groups", "data_layout", "kernel_layout",
               "out_layout", "out_dtype")


def weight_key(w: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(w, np.float32).tobytes()).hexdigest()


@dataclass
class Folded:
    mod: tvm.IRModule
    origins: dict[str, np.ndarray] = field(default_factory=dict)  # folded key -> module weight


def _conv(x, w: np.ndarray, call, padding=None) -> relax.Expr:
    attrs = {k: call.attrs[k] for k in _CONV_ATTRS}
    if padding is not None:
        attrs["padding"] = padding
    return relax.op.nn.conv2d(x, relax.const(w.astype(np.float32)), **attrs)


def fold_batch_norm(folded: Folded) -> Folded:
    """conv2d / matmul with a constant weight, an optional constant bias add, then an inference
    batch norm on the channel axis -> the folded layer + bias."""
    func = folded.mod["main"]
    for core_op in ("relax.nn.conv2d", "relax.matmul"):
        for bias_side in (None, 0, 1):
            x, w, b = wildcard(), is_const(), is_const()
            core = is_op(core_op)(x, w)
            src = core if bias_side is None else \
                (is_op("relax.add")(core, b) if bias_side == 0 else is_op("relax.add")(b, core))
            stats = [is_const() for _ in range(4)]
            bn = is_op("relax.nn.batch_norm")(src, *stats)
            out = is_tuple_get_item(bn, 0)

            def rewrite(expr, m, core_op=core_op, bias_side=bias_side, x=x, w=w, b=b, bn=bn,
                        stats=stats, core=core):
                call = m[bn]
                rank = len(call.args[0].ty.shape)
                if int(call.attrs.axis) % rank != 1 or (core_op == "relax.matmul" and rank != 2):
                    return expr
                gamma, beta, mean, var = (m[s].value.numpy().astype(np.float64) for s in stats)
                scale = gamma / np.sqrt(var + float(call.attrs.epsilon))
                weight = m[w].value.numpy().astype(np.float64)
                bias = np.zeros_like(scale) if bias_side is None else \
                    m[b].value.numpy().astype(np.float64).reshape(-1)
                if bias.size != scale.size:
                    return expr
                if core_op == "relax.nn.conv2d":
                    new_w = weight * scale[:, None, None, None]
                    layer = _conv(m[x], new_w, m[core])
                    shift = ((bias - mean) * scale + beta).reshape(1, -1, 1, 1)
                else:  # matmul weight is [K, O]
                    new_w = weight * scale[None, :]
                    layer = relax.op.matmul(m[x], relax.const(new_w.astype(np.float32)),
                                            out_dtype="float32")
                    shift = ((bias - mean) * scale + beta).reshape(1, -1)
                original = weight.T if core_op == "relax.matmul" else weight
                folded.origins[weight_key(new_w.T if core_op == "relax.matmul" else new_w)] = \
                    original.astype(np.float32)
                return relax.op.add(layer, relax.const(shift.astype(np.float32)))

            func = rewrite_call(out, rewrite, func)
    folded.mod = _with_main(folded.mod, func)
    return folded


def fold_padding(folded: Folded) -> Folded:
    """conv2d(pad(x, zeros on H and W)) -> conv2d(x) with the padding added to its own."""
    x, w = wildcard(), is_const()
    pad = is_op("relax.nn.pad")(x)
    conv = is_op("relax.nn.conv2d")(pad, w)

    def rewrite(expr, m):
        p, c = m[pad], m[conv]
        widths = [int(v) for v in p.attrs.pad_width]
        if (str(p.attrs.pad_mode) != "constant" or float(p.attrs.pad_value) != 0.0
                or len(widths) != 8 or any(widths[:4]) or c.attrs.data_layout != "NCHW"):
            return expr
        t, bt, lf, r = widths[4:]
        own = [int(v) for v in c.attrs.padding]
        own = own * 2 if len(own) == 2 else own  # top, left, bottom, right
        padding = [own[0] + t, own[1] + lf, own[2] + bt, own[3] + r]
        return _conv(m[x], m[w].value.numpy(), c, padding)

    folded.mod = _with_main(folded.mod, rewrite_call(conv, rewrite, folded.mod["main"]))
    return folded


def affine_batch_norm(folded: Folded) -> Folded:
    """A batch norm left with nothing to fold into -> x * scale + shift with per-channel
    constants (the affine layer kind's pattern)."""
    x = wildcard()
    stats = [is_const() for _ in range(4)]
    bn = is_op("relax.nn.batch_norm")(x, *stats)

    def rewrite(expr, m):
        call = m[bn]
        rank = len(call.args[0].ty.shape)
        if int(call.attrs.axis) % rank != 1:
            return expr
        gamma, beta, mean, var = (m[s_].value.numpy().astype(np.float64) for s_ in stats)
        scale = gamma / np.sqrt(var + float(call.attrs.epsilon))
        shape = (1, -1) + (1,) * (rank - 2)
        shift = beta - mean * scale
        return relax.op.add(relax.op.multiply(m[x], relax.const(
            scale.reshape(shape).astype(np.float32))), relax.const(
            shift.reshape(shape).astype(np.float32)))

    folded.mod = _with_main(folded.mod, rewrite_call(is_tuple_get_item(bn, 0), rewrite,
                                                     folded.mod["main"]))
    return folded


def split_to_slices(folded: Folded) -> Folded:
    """split(x)[i] -> strided_slice(x) of part i: each part a tensor of its own (a layer can
    take one; a split's tuple would bind all its readers to one function)."""
    x = wildcard()
    split = is_op("relax.split")(x)
    part = is_tuple_get_item(split)

    def rewrite(expr, m):
        call, i = m[split], int(expr.index)
        axis = int(call.attrs.axis)
        n = int(call.args[0].ty.shape[axis])
        given = call.attrs.indices_or_sections
        if not hasattr(given, "__len__"):  # a number of equal sections
            k = int(given)
            bounds = [j * n // k for j in range(k + 1)]
        else:
            bounds = [0, *(int(v) for v in given), n]
        return relax.op.strided_slice(m[x], [axis], [bounds[i]], [bounds[i + 1]])

    folded.mod = _with_main(folded.mod, rewrite_call(part, rewrite, folded.mod["main"]))
    return folded


def _with_main(mod: tvm.IRModule, func: relax.Function) -> tvm.IRModule:
    mod = tvm.IRModule({**{gv: f for gv, f in mod.functions.items() if gv.name_hint != "main"},
                        mod.get_global_var("main"): func})
    return relax.transform.DeadCodeElimination()(mod)


def fold_for_tta(mod: tvm.IRModule) -> Folded:
    """Bindings canonicalized (a tuple built and taken apart again, as torch's max pooling
    with its indices imports, no longer sits between an op and its ReLU), padding folded into
    convolutions, batch norms into the layers before them, and the batch norms left over turned
    into per-channel affine arithmetic; splits into slices."""
    mod = relax.transform.DeadCodeElimination()(relax.transform.CanonicalizeBindings()(mod))
    return split_to_slices(affine_batch_norm(fold_batch_norm(fold_padding(Folded(mod)))))
