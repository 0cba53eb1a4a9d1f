"""Layers that move int8 values without changing them: nearest-neighbour upsampling by whole
factors and channel concatenation. One scale in and out (the producers requantize to it), so
their code is copies by the LSU (`compiler.plans.moves`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tvm.relax.dpl import is_op, is_tuple, wildcard
from tvm.relax.transform import PatternCheckContext

from compiler.intsem import QMAX, QMIN, quantize_act
from compiler.kinds.base import NO_HINTS, FloatLayer, LayerKind, batch_one, fusion, shape
from compiler.errors import CompileError
from compiler.layer_ir import Concat, Conv2d, Output, Resize

MAX_CONCAT = 8  # inputs of one concatenation matched on the accelerator

# coordinate transformations under which nearest upsampling by a whole factor s reads input
# floor(y / s) (half-pixel centres rounded lie strictly inside an input pixel)
_FLOOR_MODES = {("half_pixel", "round"), ("half_pixel", "round_prefer_floor"),
                ("half_pixel", "round_prefer_ceil"), ("pytorch_half_pixel", "round"),
                ("asymmetric", "floor")}


def _whole_factors(r) -> bool:
    """An NCHW batch-1 resize to a whole multiple of its input's size."""
    x = r.args[0]
    if r.attrs.layout != "NCHW" or not batch_one(x):
        return False
    (_, _, h, w), (_, _, oh, ow) = ([int(d) for d in e.ty.shape] for e in (x, r))
    return oh % h == 0 and ow % w == 0 and (oh, ow) != (h, w)


def _check_resize(ctx: PatternCheckContext) -> bool:
    r = ctx.annotated_expr["root"]
    a = r.attrs
    return a.method == "nearest_neighbor" and _whole_factors(r) \
        and (a.coordinate_transformation_mode, a.rounding_method) in _FLOOR_MODES


def check_bilinear(ctx: PatternCheckContext) -> bool:
    """Bilinear with half-pixel centres (PyTorch's align_corners=False) by whole factors."""
    r = ctx.annotated_expr["root"]
    a = r.attrs
    return a.method == "linear" and _whole_factors(r) \
        and a.coordinate_transformation_mode in ("half_pixel", "pytorch_half_pixel")


def _check_concat(ctx: PatternCheckContext) -> bool:
    c = ctx.annotated_expr["root"]
    parts = c.args[0].fields
    shapes = [[int(d) for d in p.ty.shape] if p.ty.shape is not None else None for p in parts]
    if any(s is None or len(s) != 4 for s in shapes):
        return False
    return int(c.attrs.axis) % 4 == 1 and all(s[0] == 1 and s[2:] == shapes[0][2:]
                                               for s in shapes)


class _MoveKind(LayerKind):
    """Values pass: the accumulator stage holds the values themselves."""

    passes_values = True
    moves_rows = True

    def accumulates(self, layer):
        return False

    def output(self, layer, acc, out=None):
        return np.clip(acc, QMIN, QMAX).astype(np.int8).reshape((len(acc), *layer.out_shape))

    def _out(self, f: FloatLayer, out) -> Output:
        return Output("int8", np.full(f.out_shape[0], float(out.scale)))


class Resize2dKind(LayerKind):
    """What nearest and bilinear upsampling share: TVM's resize2d, matched where `check`
    accepts it, and run in float by torch's `interpolate` with `mode`."""

    mode = "nearest"
    align_corners: bool | None = None
    check = staticmethod(_check_resize)

    def patterns(self):
        core = is_op("relax.image.resize2d")(wildcard(), wildcard())
        return [fusion(self.name, core, core, self.check)]

    def read(self, func, calls):
        r = next(c for c in calls if c.op.name == "relax.image.resize2d")
        return FloatLayer(self.name, func, (shape(r.args[0]),), shape(r))

    def float_forward(self, f, *xs):
        x = torch.from_numpy(np.asarray(xs[0], np.float32)).reshape(1, *f.in_shapes[0])
        return F.interpolate(x, size=f.out_shape[1:], mode=self.mode,
                             align_corners=self.align_corners).numpy().reshape(f.out_shape)


class ResizeKind(_MoveKind, Resize2dKind):
    name = "resize"

    def quantize(self, f, name, w_bits, ins, out, per_tensor=False):
        return Resize(name, tuple(f.in_shapes[0]), tuple(f.out_shape), float(ins[0].scale),
                      self._out(f, out), f.func)

    def accumulate(self, layer, *xs):
        fy, fx = layer.factor
        x = np.asarray(xs[0], np.int64).reshape((-1, *layer.in_shape))
        return x.repeat(fy, axis=2).repeat(fx, axis=3)

    def fake_quant(self, layer, *xs):
        s = layer.in_scale
        x = quantize_act(np.asarray(xs[0]).reshape(layer.in_shape), s) * s
        fy, fx = layer.factor
        return x.repeat(fy, axis=1).repeat(fx, axis=2)

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        from compiler.plans.moves import ResizePlan
        return ResizePlan(index, layer, config, mem)

    def describe(self, layer):
        return f"nearest x{layer.factor} {layer.in_shape} -> {layer.out_shape}"

    def manifest(self, layer):
        return {"method": "nearest", "factor": list(layer.factor)}


class ConcatKind(_MoveKind):
    name = "concat"

    def patterns(self):
        table = []
        for n in range(MAX_CONCAT, 1, -1):
            core = is_op("relax.concat")(is_tuple([wildcard() for _ in range(n)]))
            table.append(fusion(f"concat_{n}", core, core, _check_concat))
        return table

    def read(self, func, calls):
        c = next(c for c in calls if c.op.name == "relax.concat")
        return FloatLayer(self.name, func, tuple(shape(p) for p in c.args[0].fields), shape(c))

    def float_forward(self, f, *xs):
        return np.concatenate([np.asarray(x, np.float32).reshape(s)
                               for x, s in zip(xs, f.in_shapes)], axis=0)

    def quantize(self, f, name, w_bits, ins, out, per_tensor=False):
        return Concat(name, tuple(tuple(s) for s in f.in_shapes), tuple(f.out_shape),
                      float(out.scale), self._out(f, out), f.func)

    def input_formats(self, layer):
        return [(layer.in_scale, 8)] * len(layer.in_shapes)

    def accumulate(self, layer, *xs):
        return np.concatenate([np.asarray(x, np.int64).reshape((-1, *s))
                               for x, s in zip(xs, layer.in_shapes)], axis=1)

    def fake_quant(self, layer, *xs):
        s = layer.in_scale
        return np.concatenate([quantize_act(np.asarray(x).reshape(sh), s) * s
                               for x, sh in zip(xs, layer.in_shapes)], axis=0)

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        from compiler.plans.moves import ConcatPlan
        return ConcatPlan(index, layer, config, mem)

    def describe(self, layer):
        return f"{' + '.join(str(s[0]) for s in layer.in_shapes)} channels of " \
               f"{layer.out_shape[1:]} -> {layer.out_shape}"

    def manifest(self, layer):
        return {"inputs": [list(s) for s in layer.in_shapes]}


def _ints(e) -> list[int]:
    """A tuple / shape argument's integers."""
    items = getattr(e, "fields", None) or getattr(e, "values", None) or []
    return [int(getattr(v, "value", v)) for v in items]


def _check_shuffle(ctx: PatternCheckContext) -> bool:
    """reshape to (1, g, C / g, H, W), swap axes 1 and 2, reshape back: a channel shuffle."""
    first, perm, last = (ctx.annotated_expr[k] for k in ("first", "perm", "root"))
    try:
        (n, c, h, w), s5, out = ([int(d) for d in e.ty.shape]
                                 for e in (first.args[0], first, last))
    except (TypeError, AttributeError):
        return False
    return n == 1 and len(s5) == 5 and s5[0] == 1 and s5[1] * s5[2] == c and \
        s5[3:] == [h, w] and [int(a) for a in perm.attrs.axes] == [0, 2, 1, 3, 4] and \
        out == [1, c, h, w]


def _check_slice(ctx: PatternCheckContext) -> bool:
    """A slice of the channels of an NCHW tensor (step 1)."""
    s = ctx.annotated_expr["root"]
    shape_in = getattr(s.args[0].ty, "shape", None)
    if shape_in is None or len(shape_in) != 4 or int(shape_in[0]) != 1:
        return False
    axes = _ints(s.args[1])
    steps = _ints(s.args[4]) if len(s.args) > 4 else [1]
    return axes == [1] and steps in ([], [1])


class GatherKind(LayerKind):
    """Channels picked or reordered (ShuffleNet's channel shuffle, a split's parts, channel
    slices): out[c] = in[index[c]]. The accelerator runs it as a 1x1 convolution whose
    weights are the 0/1 selection matrix, requantized from its input's scale to its
    consumer's (exact where they are equal), so it is a conv layer in the layer IR."""

    name = "gather"

    def patterns(self):
        first = is_op("relax.reshape")(wildcard(), wildcard())
        perm = is_op("relax.permute_dims")(first)
        last = is_op("relax.reshape")(perm, wildcard())
        core = is_op("relax.strided_slice")(*[wildcard() for _ in range(4)])
        core5 = is_op("relax.strided_slice")(*[wildcard() for _ in range(5)])
        return [fusion("gather_shuffle", last, last, _check_shuffle, first=first, perm=perm),
                fusion("gather_slice", core5, core5, _check_slice),
                fusion("gather_slice4", core, core, _check_slice)]

    def read(self, func, calls):
        x = calls[0].args[0]
        c, h, w = shape(x)
        if calls[0].op.name == "relax.strided_slice":
            begin, end = _ints(calls[0].args[2])[0], _ints(calls[0].args[3])[0]
            index = np.arange(c)[begin:end]
        else:  # shuffle: output channel j * g + i is input channel i * (C / g) + j
            g, per = (int(calls[0].ty.shape[k]) for k in (1, 2))
            index = np.arange(c).reshape(g, per).T.reshape(-1)
        return FloatLayer(self.name, func, ((c, h, w),), (len(index), h, w), weight=index)

    def float_forward(self, f, *xs):
        return np.asarray(xs[0], np.float32).reshape(f.in_shapes[0])[f.weight]

    def quantize(self, f, name, w_bits, ins, out, per_tensor=False):
        from compiler.intsem import Requant
        c, h, w = f.in_shapes[0]
        o = len(f.weight)
        select = np.zeros((o, c, 1, 1), np.int8)
        select[np.arange(o), f.weight, 0, 0] = 1
        s_in, s_out = float(ins[0].scale), float(out.scale)
        return Conv2d(name, (c, h, w), (o, h, w), select, np.zeros(o, np.int32), (1, 1),
                      (0, 0, 0, 0), (1, 1), 1, 8, 8, s_in, Output(
                          "int8", np.full(o, s_out),
                          requant=Requant.from_scale(np.full(o, s_in / s_out))),
                      f.func, np.ones(o))

    def accumulate(self, layer, *xs):
        raise CompileError("a gather is a conv layer in the layer IR")

    def fake_quant(self, layer, *xs):
        raise CompileError("a gather is a conv layer in the layer IR")

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        raise CompileError("a gather is a conv layer in the layer IR")
