"""Pooling, residual adds and per-channel affine layers (a batch norm with nothing to fold into):
int8 in, int8 out, run on rows of the data memory (an average pooling of at most W/8 channels
as a depthwise convolution of weight 1: `compiler.plans.elementwise.AvgPoolPlan`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tvm.relax.dpl import is_const, is_op, wildcard
from tvm.relax.transform import PatternCheckContext

from compiler.intsem import QMIN, Requant, fixed_point, quantize_act, quantize_bias, wrap32
from compiler.kinds.base import (NO_HINTS, FloatLayer, LayerKind, activation, apply_activation,
                                 batch_one, clip_bounds, const_value, finish_float, fusion,
                                 is_constant, shape, with_activation)
from compiler.kinds.moves import Resize2dKind, check_bilinear
from compiler.layer_ir import Add, Affine, Bilinear, Output, Pool, Scale, bilinear_taps
from compiler.reference import windows


def _pool_padding(pool) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) padding of a pooling, ceil mode's as more at the bottom and
    right: the windows its output size implies past the padded input."""
    a = pool.attrs
    pt, pl, pb, pr = (int(p) for p in a.padding)
    (_, _, h, w), (_, _, oh, ow) = ([int(d) for d in e.ty.shape] for e in (pool.args[0], pool))
    (kh, kw), (sh, sw) = ([int(v) for v in a.pool_size], [int(v) for v in a.strides])
    return (pt, pl, pb + max(0, (oh - 1) * sh + kh - (h + pt + pb)),
            pr + max(0, (ow - 1) * sw + kw - (w + pl + pr)))


def _check_pool(ctx: PatternCheckContext) -> bool:
    """NCHW pooling, batch 1, no dilation. Average pooling divides by the whole window: its
    padding counts (count_include_pad) and ceil mode adds no window past it (PyTorch divides
    those by the part inside)."""
    pool = ctx.annotated_expr["root"]
    a = pool.attrs
    if not (a.layout == "NCHW" and all(int(d) == 1 for d in a.dilation)
            and batch_one(pool.args[0]) and pool.ty.shape is not None):
        return False
    if pool.op.name == "relax.nn.max_pool2d":
        return True
    padded = tuple(int(p) for p in a.padding)
    return (bool(a.count_include_pad) or not any(padded)) and _pool_padding(pool) == padded


def _check_mean(ctx: PatternCheckContext) -> bool:
    """Global average pooling: a mean over both spatial axes of an NCHW tensor (the output
    keeping them or not)."""
    mean = ctx.annotated_expr["root"]
    axes = sorted(int(a) % 4 for a in mean.attrs.axis) if mean.attrs.axis is not None else []
    return len(mean.args[0].ty.shape) == 4 and axes == [2, 3] and batch_one(mean.args[0])


def _depthwise(layer: Pool, config) -> bool:
    """An average pooling whose channels fit one trigger's lanes runs as a depthwise
    convolution: channels across lanes, several positions a trigger, its input read in its
    producer's grid (wider: a trigger per tap and chunk either way, and the row pooling reads
    the rows its producer writes a position at a time)."""
    return layer.op == "avg" and layer.in_shape[0] <= config.vector_width // 8


class PoolKind(LayerKind):
    """Max and average pooling, global average pooling (the kernel is the input)."""

    name = "pool"

    def reads_row_positions(self, layer, config):
        from compiler.plans.rows import packed_slot
        return not _depthwise(layer, config) and \
            packed_slot(layer, config.vector_width // 8) is None

    def patterns(self):
        table = []
        for kind in ("max", "avg"):
            core = is_op(f"relax.nn.{kind}_pool2d")(wildcard())
            table += [fusion(f"pool_{kind}{suffix}", p, core, _check_pool)
                      for suffix, p in with_activation(core)]
        core = is_op("relax.mean")(wildcard())
        table += [fusion(f"pool_global_avg{suffix}", p, core, _check_mean)
                  for suffix, p in with_activation(core)]
        return table

    def read(self, func, calls):
        core, act = calls[0], activation(calls)
        if core.op.name == "relax.mean":
            s = shape(core.args[0])
            return FloatLayer(self.name, func, (s,), (s[0], 1, 1), act=act, kernel=s[1:],
                              strides=s[1:], pool="avg")
        a = core.attrs
        return FloatLayer(self.name, func, (shape(core.args[0]),), shape(calls[-1]), act=act,
                          strides=tuple(int(s) for s in a.strides),
                          padding=_pool_padding(core),
                          kernel=tuple(int(k) for k in a.pool_size),
                          pool="max" if "max" in core.op.name else "avg")

    def float_forward(self, f, *xs):
        x = torch.from_numpy(np.asarray(xs[0], np.float32)).reshape(1, *f.in_shapes[0])
        pt, pl, pb, pr = f.padding
        if f.pool == "max":
            y = F.max_pool2d(F.pad(x, (pl, pr, pt, pb), value=-np.inf), f.kernel, f.strides)
        else:
            y = F.avg_pool2d(F.pad(x, (pl, pr, pt, pb)), f.kernel, f.strides)
        return apply_activation(y, f.act).numpy().reshape(f.out_shape)

    def quantize(self, f, name, w_bits, ins, out, per_tensor=False):
        c = f.out_shape[0]
        if f.pool == "max":  # values pass: one scale in and out
            return Pool(name, "max", f.in_shapes[0], f.out_shape, f.kernel, f.strides,
                        f.padding, float(ins[0].scale),
                        Output("int8", np.full(c, float(out.scale))),
                        f.func, clip_bounds(f.act, float(out.scale)))
        n = f.kernel[0] * f.kernel[1]
        s_in, s_out = float(ins[0].scale), float(out.scale)
        rq = Requant.from_scale(s_in / (n * s_out))
        lo, hi = clip_bounds(f.act, s_out)
        return Pool(name, "avg", f.in_shapes[0], f.out_shape, f.kernel, f.strides, f.padding,
                    s_in, Output("int8", np.full(c, s_out),
                                 requant=Requant(rq.multiplier, rq.shift, lo, hi)), f.func)

    def accumulate(self, layer, *xs):
        fill = QMIN if layer.op == "max" else 0
        x = np.asarray(xs[0], np.int64).reshape((-1, *layer.in_shape))
        win = windows(x, layer.kernel, layer.stride, layer.padding, (1, 1), fill)
        return win.max(axis=(2, 3)) if layer.op == "max" else win.sum(axis=(2, 3))

    def accumulates(self, layer):
        return layer.op != "max"

    def output(self, layer, acc, out=None):
        if layer.op == "max":  # values pass, through the fused ReLU / clip
            return np.clip(acc, *layer.clip).astype(np.int8)
        return super().output(layer, acc, out)

    def fake_quant(self, layer, *xs):
        s = layer.in_scale
        x = quantize_act(np.asarray(xs[0]).reshape(layer.in_shape), s) * s
        win = windows(x, layer.kernel, layer.stride, layer.padding, (1, 1),
                      -np.inf if layer.op == "max" else 0.0)
        if layer.op == "max":
            s_out = float(layer.out.scale[0])
            return np.clip(np.round(win.max(axis=(1, 2)) / s_out), *layer.clip) * s_out
        return finish_float(layer.out, win.mean(axis=(1, 2)))

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        if _depthwise(layer, config):
            from compiler.plans.elementwise import AvgPoolPlan
            return AvgPoolPlan(index, layer, config, mem)
        from compiler.plans.rows import PoolPlan
        return PoolPlan(index, layer, config, mem)

    def describe(self, layer):
        return f"{layer.op} {layer.in_shape} -> {layer.out_shape} k={layer.kernel}"

    def manifest(self, layer):
        return {"pool": layer.op, "kernel": list(layer.kernel), "stride": list(layer.stride)}


def _check_add(ctx: PatternCheckContext) -> bool:
    """Element-wise add of two computed tensors of one shape (residual connections)."""
    add = ctx.annotated_expr["root"]
    a, b = add.args
    shapes = [tuple(int(d) for d in e.ty.shape) if e.ty.shape is not None else None
              for e in (a, b)]
    return (not is_constant(a) and not is_constant(b) and shapes[0] == shapes[1]
            and shapes[0] is not None and len(shapes[0]) == 4 and shapes[0][0] == 1)


class AddKind(LayerKind):
    """requant(a * ka + b * kb): residual connections, with a ReLU / clip fused after."""

    name = "add"

    def patterns(self):
        core = is_op("relax.add")(wildcard(), wildcard())
        return [fusion(f"add{suffix}", p, core, _check_add) for suffix, p in with_activation(core)]

    def read(self, func, calls):
        add = next(c for c in calls if c.op.name == "relax.add")
        return FloatLayer(self.name, func, (shape(add.args[0]), shape(add.args[1])),
                          shape(calls[-1]), act=activation(calls))

    def float_forward(self, f, *xs):
        y = torch.from_numpy(np.asarray(xs[0], np.float32) + np.asarray(xs[1], np.float32))
        return apply_activation(y, f.act).numpy().reshape(f.out_shape)

    def quantize(self, f, name, w_bits, ins, out, per_tensor=False):
        # acc = a * ka + b * kb in units of s_min / 2**k, then requantized
        sa, sb, s_out = float(ins[0].scale), float(ins[1].scale), float(out.scale)
        s_min = min(sa, sb)
        k = 10
        ka, kb = round(sa / s_min * 2**k), round(sb / s_min * 2**k)
        while max(ka, kb) >= 2**11 and k > 0:
            k -= 1
            ka, kb = round(sa / s_min * 2**k), round(sb / s_min * 2**k)
        lo, hi = clip_bounds(f.act, s_out)
        rq = Requant.from_scale(s_min / 2**k / s_out)
        c = f.out_shape[0]
        return Add(name, f.out_shape, ka, kb, sa, sb,
                   Output("int8", np.full(c, s_out),
                          requant=Requant(rq.multiplier, rq.shift, lo, hi)), f.func)

    def input_formats(self, layer):
        return [(layer.a_scale, 8), (layer.b_scale, 8)]

    def accumulate(self, layer, *xs):
        a, b = (np.asarray(x, np.int64).reshape((-1, *layer.shape)) for x in xs)
        if layer.rescale:
            return wrap32(layer.rescale[0].apply(a) + layer.rescale[1].apply(b))
        return wrap32(a * layer.ka + b * layer.kb)

    def fake_quant(self, layer, *xs):
        y = (quantize_act(np.asarray(xs[0]).reshape(layer.shape), layer.a_scale) * layer.a_scale
             + quantize_act(np.asarray(xs[1]).reshape(layer.shape), layer.b_scale) * layer.b_scale)
        return finish_float(layer.out, y)

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        from compiler.plans.rows import AddPlan
        return AddPlan(index, layer, config, mem)

    def describe(self, layer):
        return f"{layer.shape}"

    def manifest(self, layer):
        return {"factors": [layer.ka, layer.kb]}


def _per_channel(e, rank: int) -> bool:
    """A constant of shape (1, C, 1, ...) for a rank-`rank` tensor."""
    s_ = [int(d) for d in e.ty.shape]
    return len(s_) == rank and s_[0] == 1 and all(d == 1 for d in s_[2:])


def _check_affine(ctx: PatternCheckContext) -> bool:
    add, mul = ctx.annotated_expr["root"], ctx.annotated_expr["mul"]
    x, scale, shift = mul.args[0], mul.args[1], add.args[1]
    rank = len(x.ty.shape)
    return (rank in (2, 4) and batch_one(x) and _per_channel(scale, rank)
            and _per_channel(shift, rank) and int(scale.ty.shape[1]) == int(x.ty.shape[1])
            == int(shift.ty.shape[1]))


class AffineKind(LayerKind):
    """x * scale[c] + shift[c] per channel (a batch norm no conv or dense precedes, turned into
    this by `compiler.fold`), through the post-processing's per-channel requantization
    (negative scales included)."""

    name = "affine"

    def patterns(self):
        mul = is_op("relax.multiply")(wildcard(), is_const())
        core = is_op("relax.add")(mul, is_const())
        return [fusion(f"affine{suffix}", p, core, _check_affine, mul=mul)
                for suffix, p in with_activation(core)]

    def read(self, func, calls):
        mul = next(c for c in calls if c.op.name == "relax.multiply")
        add = next(c for c in calls if c.op.name == "relax.add")
        return FloatLayer(self.name, func, (shape(mul.args[0]),), shape(mul.args[0]),
                          const_value(mul.args[1]).reshape(-1).astype(np.float64),
                          const_value(add.args[1]).reshape(-1).astype(np.float64),
                          activation(calls))

    def float_forward(self, f, *xs):
        x = np.asarray(xs[0], np.float64).reshape(f.in_shapes[0])
        per = (-1,) + (1,) * (x.ndim - 1)
        y = torch.from_numpy(x * f.weight.reshape(per) + f.bias.reshape(per))
        return apply_activation(y, f.act).numpy().reshape(f.out_shape)

    def quantize(self, f, name, w_bits, ins, out, per_tensor=False):
        s_in, s_out = float(ins[0].scale), float(out.scale)
        scale = np.where(np.abs(f.weight) > 1e-12, f.weight, 1e-12)
        pairs = [fixed_point(abs(m)) for m in s_in * scale / s_out]
        mul = np.array([m if sc > 0 else -m for (m, _), sc in zip(pairs, scale)], np.int64)
        shift = np.array([sh for _, sh in pairs], np.int64)
        bias = quantize_bias(f.bias, s_in, scale, name)
        lo, hi = clip_bounds(f.act, s_out)
        c = len(scale)
        grid = tuple(f.in_shapes[0]) + (1,) * (3 - len(f.in_shapes[0]))
        return Affine(name, grid, bias, s_in,
                      Output("int8", np.full(c, s_out), requant=Requant(mul, shift, lo, hi)),
                      f.func, tuple(f.out_shape))

    def accumulate(self, layer, *xs):
        x = np.asarray(xs[0], np.int64).reshape((-1, *layer.shape))
        return wrap32(x + layer.bias.astype(np.int64)[None, :, None, None])

    def fake_quant(self, layer, *xs):
        s = layer.in_scale
        x = quantize_act(np.asarray(xs[0]).reshape(layer.shape), s) * s
        rq = layer.out.requant
        m = rq.multiplier.astype(np.float64) * 2.0 ** (-31 - rq.shift)  # s_in scale / s_out
        y = (x / s + layer.bias[:, None, None]) * m[:, None, None] * float(layer.out.scale[0])
        return finish_float(layer.out, y).reshape(layer.out_shape)

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        from compiler.plans.rows import AffinePlan
        return AffinePlan(index, layer, config, mem)


def bilinear_weights(layer: Bilinear) -> list[tuple[int, int, list[tuple[int, int, int]]]]:
    """Per output phase (dy, dx): taps (row offset, column offset, integer weight over
    4 * fy * fx)."""
    (fy, fx) = layer.factor
    ty, tx = bilinear_taps(fy), bilinear_taps(fx)
    return [(dy, dx, [(a, b, wa * wb) for a, wa in ty[dy] for b, wb in tx[dx]])
            for dy in range(fy) for dx in range(fx)]


class BilinearKind(Resize2dKind):
    """Bilinear upsampling by whole factors (half-pixel centres, edges clamped): the weighted
    sum of up to 4 inputs per output, requantized; on rows like pooling (lanes = channels)."""

    name = "bilinear"
    moves_rows = True
    mode, align_corners = "bilinear", False
    check = staticmethod(check_bilinear)

    def quantize(self, f, name, w_bits, ins, out, per_tensor=False):
        s_in, s_out = float(ins[0].scale), float(out.scale)
        fy, fx = f.out_shape[1] // f.in_shapes[0][1], f.out_shape[2] // f.in_shapes[0][2]
        rq = Requant.from_scale(s_in / (4 * fy * fx * s_out))
        return Bilinear(name, tuple(f.in_shapes[0]), tuple(f.out_shape), s_in,
                        Output("int8", np.full(f.out_shape[0], s_out),
                               requant=Requant(rq.multiplier, rq.shift, QMIN, 127)), f.func)

    def _sum(self, layer, x):
        """Weighted sums over D of x [B, C, H, W] (any numeric type), [B, C, OH, OW]."""
        b, c, h, w = x.shape
        fy, fx = layer.factor
        out = np.zeros((b, c, h * fy, w * fx), x.dtype)
        for dy, dx, taps in bilinear_weights(layer):
            for a, bb, wt in taps:
                rows = np.clip(np.arange(h) + a, 0, h - 1)
                cols = np.clip(np.arange(w) + bb, 0, w - 1)
                out[:, :, dy::fy, dx::fx] += wt * x[:, :, rows][:, :, :, cols]
        return out

    def accumulate(self, layer, *xs):
        x = np.asarray(xs[0], np.int64).reshape((-1, *layer.in_shape))
        return wrap32(self._sum(layer, x))

    def fake_quant(self, layer, *xs):
        s = layer.in_scale
        x = quantize_act(np.asarray(xs[0]).reshape(layer.in_shape), s) * s
        fy, fx = layer.factor
        return finish_float(layer.out, self._sum(layer, x[None])[0] / (4 * fy * fx))

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        from compiler.plans.rows import BilinearPlan
        return BilinearPlan(index, layer, config, mem)

    def describe(self, layer):
        return f"bilinear x{layer.factor} {layer.in_shape} -> {layer.out_shape}"

    def manifest(self, layer):
        return {"method": "bilinear", "factor": list(layer.factor)}


def _check_scale(ctx: PatternCheckContext) -> bool:
    """A computed NCHW tensor times a computed (1, C, 1, 1) one (either order)."""
    mul = ctx.annotated_expr["root"]
    shapes = [tuple(int(d) for d in e.ty.shape) if getattr(e.ty, "shape", None) is not None
              else None for e in mul.args]
    if any(is_constant(e) for e in mul.args) or None in shapes or \
            any(len(sh) != 4 or sh[0] != 1 for sh in shapes):
        return False
    (c, h, w), (c2, h2, w2) = sorted((sh[1:] for sh in shapes), key=lambda t: t[1] * t[2],
                                     reverse=True)
    return c == c2 and (h2, w2) == (1, 1)  # 1 x 1 maps too (the last stages' SE)


class ScaleKind(LayerKind):
    """x * s[c]: a feature map scaled per channel by a vector the network computed (the gate of
    squeeze-and-excitation), through the element-wise MAC with s's row as the weights."""

    name = "scale"

    def patterns(self):
        core = is_op("relax.multiply")(wildcard(), wildcard())
        return [fusion("scale", core, core, _check_scale)]

    def read(self, func, calls):
        a, b = (shape(e) for e in calls[0].args)
        first = a[1] * a[2] < b[1] * b[2]  # equal (1 x 1 maps): the model's order, x first
        return FloatLayer(self.name, func, (a, b), b if first else a, vector_first=first)

    def _ordered(self, layer, xs):
        """(x, s) from the inputs in the model's order."""
        return (xs[1], xs[0]) if layer.vector_first else (xs[0], xs[1])

    def float_forward(self, f, *xs):
        a, b = (np.asarray(x, np.float32).reshape(sh) for x, sh in zip(xs, f.in_shapes))
        return (a * b).reshape(f.out_shape)

    def quantize(self, f, name, w_bits, ins, out, per_tensor=False):
        sx, ss = (float(q.scale) for q in (ins[::-1] if f.vector_first else ins))
        s_out = float(out.scale)
        rq = Requant.from_scale(sx * ss / s_out)
        c = f.out_shape[0]
        return Scale(name, tuple(f.out_shape), sx, ss,
                     Output("int8", np.full(c, s_out), requant=rq), f.func, f.vector_first)

    def input_formats(self, layer):
        formats = [(layer.x_scale, 8), (layer.s_scale, 8)]
        return formats[::-1] if layer.vector_first else formats

    def accumulate(self, layer, *xs):
        x, s = self._ordered(layer, xs)
        x = np.asarray(x, np.int64).reshape((-1, *layer.shape))
        return x * np.asarray(s, np.int64).reshape((-1, layer.shape[0], 1, 1))

    def fake_quant(self, layer, *xs):
        x, s = self._ordered(layer, xs)
        x = quantize_act(np.asarray(x).reshape(layer.shape), layer.x_scale) * layer.x_scale
        s = quantize_act(np.asarray(s).reshape(layer.shape[0], 1, 1), layer.s_scale) * \
            layer.s_scale
        return finish_float(layer.out, x * s)

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        from compiler.plans.rows import ScalePlan
        return ScalePlan(index, layer, config, mem)

    def describe(self, layer):
        return f"{layer.shape} x per-channel vector"
