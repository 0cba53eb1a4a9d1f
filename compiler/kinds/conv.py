"""Convolutions (dot form), depthwise convolutions (element-wise form) and dense layers: each
with an optional bias and ReLU / clip fused after it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tvm.relax.dpl import is_const, is_op, wildcard
from tvm.relax.transform import PatternCheckContext

from compiler import intsem
from compiler.errors import CompileError
from compiler.intsem import Requant, pad_value, quantize_act
from compiler.kinds.base import (NO_HINTS, FloatLayer, LayerKind, TensorQuant, activation,
                                 apply_activation, batch_one, clip_bounds, const_value,
                                 finish_float, fusion, is_constant, shape, with_activation)
from compiler.layer_ir import Conv2d, Dense, Output
from compiler.reference import conv2d_accumulators


def _with_bias_act(name: str, core, check):
    add = is_op("relax.add")(core, is_const()) | is_op("relax.add")(is_const(), core)
    return [fusion(f"{name}_bias{suffix}", p, core, check) for suffix, p in with_activation(add)] \
        + [fusion(f"{name}{suffix}", p, core, check) for suffix, p in with_activation(core)]


def _bias(calls) -> np.ndarray | None:
    adds = [c for c in calls if c.op.name == "relax.add"]
    if not adds:
        return None
    bias = [a for a in adds[0].args if is_constant(a)][0]
    return const_value(bias).reshape(-1).astype(np.float64)


def output_format(f: FloatLayer, out: TensorQuant, acc_scale: np.ndarray, o: int) -> Output:
    """How accumulators in units of acc_scale[o] become the output format."""
    if out.bits == 32:
        if f.act:
            raise CompileError(f"{f.func}: a ReLU/clip output read by the host needs an output "
                               f"scale; it cannot stay int32")
        return Output("int32", np.asarray(acc_scale, np.float64))
    s_out = float(out.scale)
    scale = np.full(o, s_out)
    if out.bits == 8 or out.storage == 8:  # (ternary values as bytes: clipped to +-1)
        lo, hi = clip_bounds(f.act, s_out)
        lo, hi = (max(lo, -1), min(hi, 1)) if out.bits == 2 else (lo, hi)
        rq = Requant.from_scale(np.asarray(acc_scale) / s_out)
        return Output("int8", scale, requant=Requant(rq.multiplier, rq.shift, lo, hi))
    if out.bits == 2:  # after a ReLU (assign_formats lets only ReLU-like ones through)
        return Output("ternary", scale, thresholds=intsem.ternary_thresholds(s_out, acc_scale),
                      relu=bool(f.act))
    if out.storage == 2:  # binary values as ternary codes: a threshold of -1 is the sign
        return Output("ternary", scale, thresholds=np.full(o, -1, np.int64))
    return Output("binary", scale)


class _Weighted(LayerKind):
    """What convolutions and dense layers share: integer weights and bias, int32 accumulators."""

    weighted = True

    def in_bits(self, f, act_bits):
        return [act_bits]

    def input_formats(self, layer):
        return [(layer.in_scale, layer.a_bits)]

    def quantize(self, f, name, w_bits, ins, out, per_tensor=False):
        s_in, a_bits = float(ins[0].scale), ins[0].bits
        wq, ws = intsem.quantize_weights(f.weight, w_bits, per_tensor)
        bias = f.bias if f.bias is not None else np.zeros(f.weight.shape[0])
        bq = intsem.quantize_bias(bias, s_in, ws, name)
        o = f.weight.shape[0]
        output = output_format(f, out, s_in * ws, o)
        return self.make(f, name, wq, bq, w_bits, a_bits, s_in, output, ws)

    def size_bits(self, layer):
        return int(layer.weight.size) * layer.w_bits + 32 * len(layer.bias)

    def describe(self, layer):
        return f"{layer.in_shape} -> {layer.out_shape} w{layer.w_bits}a{layer.a_bits}"

    def manifest(self, layer):
        return {"weight_bits": layer.w_bits, "activation_bits": layer.a_bits}


class ConvKind(_Weighted):
    name = "conv2d"
    reads_word_positions = True
    depthwise = False

    def _check(self, ctx: PatternCheckContext) -> bool:
        conv = ctx.annotated_expr["root"]
        a = conv.attrs
        c_in = int(conv.args[0].ty.shape[1])
        c_out = int(conv.args[1].ty.shape[0])
        dw = int(a.groups) > 1 and int(a.groups) == c_in == c_out
        return (a.data_layout == "NCHW" and a.kernel_layout == "OIHW" and a.out_layout == "NCHW"
                and batch_one(conv.args[0]) and conv.args[1].ty.dtype == "float32"
                and dw == self.depthwise)

    def patterns(self):
        return _with_bias_act(self.name, is_op("relax.nn.conv2d")(wildcard(), is_const()),
                              self._check)

    def read(self, func, calls):
        core = next(c for c in calls if c.op.name == "relax.nn.conv2d")
        a = core.attrs
        pad = tuple(int(p) for p in a.padding)
        return FloatLayer(self.name, func, (shape(core.args[0]),), shape(calls[-1]),
                          const_value(core.args[1]).astype(np.float64), _bias(calls),
                          activation(calls), tuple(int(s) for s in a.strides),
                          pad * 2 if len(pad) == 2 else pad, tuple(int(d) for d in a.dilation),
                          int(a.groups))

    def float_forward(self, f, *xs):
        x = torch.from_numpy(np.asarray(xs[0], np.float32)).reshape(1, *f.in_shapes[0])
        pt, pl, pb, pr = f.padding
        with torch.no_grad():
            y = F.conv2d(F.pad(x, (pl, pr, pt, pb)), torch.from_numpy(f.weight.astype(np.float32)),
                         None if f.bias is None else torch.from_numpy(f.bias.astype(np.float32)),
                         f.strides, 0, f.dilation, f.groups)
            y = apply_activation(y, f.act)
        return y.numpy().reshape(f.out_shape)

    def make(self, f, name, wq, bq, w_bits, a_bits, s_in, output, ws):
        return Conv2d(name, f.in_shapes[0], f.out_shape, wq, bq, f.strides, f.padding,
                      f.dilation, f.groups, w_bits, a_bits, s_in, output, f.func, ws)

    def accumulate(self, layer, *xs):
        return conv2d_accumulators(layer, xs[0])

    def fake_quant(self, layer, *xs):
        conv = layer.as_conv() if isinstance(layer, Dense) else layer
        s = conv.in_scale
        x = quantize_act(np.asarray(xs[0]).reshape(conv.in_shape), s, conv.a_bits) * s
        pt, pl, pb, pr = conv.padding
        xt = F.pad(torch.from_numpy(x[None]), (pl, pr, pt, pb), value=pad_value(conv.a_bits) * s)
        ws = np.asarray(conv.w_scale, np.float64)
        w = torch.from_numpy(conv.weight.astype(np.float64) * ws[:, None, None, None])
        b = torch.from_numpy(conv.bias.astype(np.float64) * s * ws)
        y = F.conv2d(xt, w, b, conv.stride, 0, conv.dilation, conv.groups)[0].numpy()
        return finish_float(layer.out, y.reshape(layer.out_shape))

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        from compiler.plans.base import mac_bits
        from compiler.plans.dot import DotPlan
        per_word = 32 // mac_bits(layer.w_bits, layer.a_bits)
        (kh, kw), c = layer.kernel, layer.in_shape[0]
        # A stem reading the network input takes patches when that packs the words better.
        packed = -(-c * kh * kw // per_word) < kh * kw * -(-c // per_word)
        return DotPlan(index, layer, config, mem,
                       im2col=host_input and layer.groups == 1 and packed,
                       row_positions=hints.row_positions, word_positions=hints.word_positions)

    def describe(self, layer):
        return (f"{layer.in_shape} -> {layer.out_shape} k={layer.kernel} s={layer.stride} "
                f"g={layer.groups} w{layer.w_bits}a{layer.a_bits}")

    def manifest(self, layer):
        return {**super().manifest(layer), "kernel": list(layer.kernel),
                "stride": list(layer.stride), "padding": list(layer.padding),
                "dilation": list(layer.dilation), "groups": layer.groups}


class DepthwiseKind(ConvKind):
    """groups = C_in = C_out: the element-wise form, channels across lanes."""

    name = "depthwise_conv2d"
    depthwise = True

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        from compiler.plans.elementwise import DepthwisePlan
        return DepthwisePlan(index, layer, config, mem)


def _check_dense(ctx: PatternCheckContext) -> bool:
    mm = ctx.annotated_expr["root"]
    return (len(mm.args[0].ty.shape) == 2 and batch_one(mm.args[0])
            and len(mm.args[1].ty.shape) == 2)


class DenseKind(_Weighted):
    """y = W x + b on a flattened input: a 1 x 1 convolution over a K x 1 x 1 input."""

    name = "dense"
    reads_word_positions = True

    def patterns(self):
        flat = is_op("relax.matmul")(is_op("relax.reshape")(wildcard(), wildcard()), is_const())
        plain = is_op("relax.matmul")(wildcard(), is_const())
        return _with_bias_act("dense_flat", flat, _check_dense) + \
            _with_bias_act("dense", plain, _check_dense)

    def read(self, func, calls):
        core = next(c for c in calls if c.op.name == "relax.matmul")
        reshape = [c for c in calls if c.op.name == "relax.reshape"]
        src = reshape[0].args[0] if reshape else core.args[0]
        return FloatLayer(self.name, func, (shape(src),), shape(calls[-1]),
                          const_value(core.args[1]).T.astype(np.float64), _bias(calls),
                          activation(calls))

    def float_forward(self, f, *xs):
        x = torch.from_numpy(np.asarray(xs[0], np.float32)).reshape(1, -1)
        with torch.no_grad():
            y = F.linear(x, torch.from_numpy(f.weight.astype(np.float32)),
                         None if f.bias is None else torch.from_numpy(f.bias.astype(np.float32)))
            y = apply_activation(y, f.act)
        return y.numpy().reshape(f.out_shape)

    def make(self, f, name, wq, bq, w_bits, a_bits, s_in, output, ws):
        return Dense(name, f.in_shapes[0], f.weight.shape[0], wq, bq, w_bits, a_bits, s_in,
                     output, f.func, ws)

    def accumulate(self, layer, *xs):
        return conv2d_accumulators(layer.as_conv(), xs[0])[:, :, 0, 0]

    def fake_quant(self, layer, *xs):
        return ConvKind.fake_quant(self, layer.as_conv(), *xs).reshape(-1)

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        from compiler.plans.dot import DotPlan
        return DotPlan(index, layer, config, mem, grid=hints.input_grid)

    def describe(self, layer):
        return f"{layer.in_shape} -> {layer.out_features} w{layer.w_bits}a{layer.a_bits}"
