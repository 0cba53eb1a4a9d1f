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
from compiler.layer_ir import Concat, Output, Resize

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
