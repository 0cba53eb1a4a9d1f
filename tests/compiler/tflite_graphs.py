"""Small int8 TFLite models written with the flatbuffer builders of the `tflite` package (no
TensorFlow): the operators and shapes the MLPerf Tiny models use and the ones they do not (odd
kernels, dilation, SAME padding of even kernels, channel multipliers, per-tensor and per-channel
weights, RELU / RELU6, adds of unequal scales, pools with and without padding, a softmax).

Quantization is the TFLite spec's: int8 activations with zero points, symmetric int8 weights
(per output channel or per tensor), int32 biases at s_in * s_w. Scales are drawn so that the
outputs spread over the int8 range rather than saturate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite
from tflite.ActivationFunctionType import ActivationFunctionType as Act
from tflite.BuiltinOperator import BuiltinOperator as Op
from tflite.BuiltinOptions import BuiltinOptions as Opt
from tflite.Padding import Padding
from tflite.TensorType import TensorType

_TYPES = {np.int8: TensorType.INT8, np.int32: TensorType.INT32, np.float32: TensorType.FLOAT32,
          np.int16: TensorType.INT16}


@dataclass
class _Tensor:
    shape: tuple[int, ...]
    dtype: type
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    axis: int = 0
    data: np.ndarray | None = None


class Graph:
    """Tensors and operators of one subgraph, built into a .tflite flatbuffer by `build`."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.tensors: list[_Tensor] = []
        self.ops: list[tuple[int, list[int], list[int], int, object]] = []
        self.inputs: list[int] = []

    # --- tensors ---------------------------------------------------------------------------
    def tensor(self, shape, dtype=np.int8, scale=None, zero_point=None, axis=0, data=None):
        scale = [] if scale is None else [float(s) for s in np.atleast_1d(scale)]
        zp = [] if zero_point is None else [int(z) for z in np.atleast_1d(zero_point)]
        self.tensors.append(_Tensor(tuple(int(d) for d in shape), dtype, scale, zp, axis, data))
        return len(self.tensors) - 1

    def input(self, shape, scale=0.05, zero_point=-10, dtype=np.int8):
        t = self.tensor(shape, dtype, scale if dtype == np.int8 else None,
                        zero_point if dtype == np.int8 else None)
        self.inputs.append(t)
        return t

    def act(self, t: int) -> tuple[float, int]:
        return self.tensors[t].scale[0], self.tensors[t].zero_point[0]

    def _out_scale(self, s_in: float, s_w: np.ndarray, fan_in: int) -> float:
        # outputs of about a third of the int8 range for inputs spread over it
        return float(s_in * np.mean(s_w) * 127 * math.sqrt(fan_in) / 40)

    # --- operators ---------------------------------------------------------------------------
    def op(self, code: int, inputs, outputs, options=None):
        self.ops.append((code, list(inputs), list(outputs), *(options or (0, None))))
        return outputs[0]

    def conv(self, x, out_ch, kernel=(3, 3), stride=(1, 1), padding="SAME", act="NONE",
             dilation=(1, 1), per_channel=True, depthwise_multiplier=None):
        n, h, w, c = self.tensors[x].shape
        s_in, zp_in = self.act(x)
        kh, kw = kernel
        dw = depthwise_multiplier is not None
        o = c * depthwise_multiplier if dw else out_ch
        wq = self.rng.integers(-127, 128, (1, kh, kw, o) if dw else (o, kh, kw, c)).astype(np.int8)
        s_w = self.rng.uniform(0.002, 0.02, o if per_channel else 1).astype(np.float32)
        fan_in = kh * kw * (1 if dw else c)
        s_out = self._out_scale(s_in, s_w, fan_in)
        bias = self.rng.integers(-2000, 2000, o).astype(np.int32)
        eh, ew = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
        if padding == "SAME":
            oh, ow = -(-h // stride[0]), -(-w // stride[1])
        else:
            oh, ow = (h - eh) // stride[0] + 1, (w - ew) // stride[1] + 1
        wt = self.tensor(wq.shape, np.int8, s_w, [0] * len(s_w), 3 if dw else 0, wq)
        bt = self.tensor((o,), np.int32, np.float32(s_in) * s_w, [0] * len(s_w), 0, bias)
        out = self.tensor((n, oh, ow, o), np.int8, s_out, int(self.rng.integers(-20, 20)))
        pad = Padding.SAME if padding == "SAME" else Padding.VALID
        fused = getattr(Act, act)

        def options(b, dw=dw):
            start, end = (tflite.DepthwiseConv2DOptionsStart, tflite.DepthwiseConv2DOptionsEnd) \
                if dw else (tflite.Conv2DOptionsStart, tflite.Conv2DOptionsEnd)
            pre = "DepthwiseConv2DOptions" if dw else "Conv2DOptions"
            start(b)
            getattr(tflite, f"{pre}AddPadding")(b, pad)
            getattr(tflite, f"{pre}AddStrideW")(b, stride[1])
            getattr(tflite, f"{pre}AddStrideH")(b, stride[0])
            getattr(tflite, f"{pre}AddDilationWFactor")(b, dilation[1])
            getattr(tflite, f"{pre}AddDilationHFactor")(b, dilation[0])
            getattr(tflite, f"{pre}AddFusedActivationFunction")(b, fused)
            if dw:
                tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, depthwise_multiplier)
            return end(b)
        kind = (Opt.DepthwiseConv2DOptions, options) if dw else (Opt.Conv2DOptions, options)
        return self.op(Op.DEPTHWISE_CONV_2D if dw else Op.CONV_2D, [x, wt, bt], [out], kind)

    def fully_connected(self, x, units, act="NONE", per_channel=False):
        shape = self.tensors[x].shape
        k = int(np.prod(shape[1:]))
        s_in, _ = self.act(x)
        wq = self.rng.integers(-127, 128, (units, k)).astype(np.int8)
        s_w = self.rng.uniform(0.002, 0.02, units if per_channel else 1).astype(np.float32)
        s_out = self._out_scale(s_in, s_w, k)
        wt = self.tensor(wq.shape, np.int8, s_w, [0] * len(s_w), 0, wq)
        bt = self.tensor((units,), np.int32, np.float32(s_in) * s_w, [0] * len(s_w), 0,
                         self.rng.integers(-2000, 2000, units).astype(np.int32))
        out = self.tensor((shape[0], units), np.int8, s_out, int(self.rng.integers(-20, 20)))

        def options(b):
            tflite.FullyConnectedOptionsStart(b)
            tflite.FullyConnectedOptionsAddFusedActivationFunction(b, getattr(Act, act))
            return tflite.FullyConnectedOptionsEnd(b)
        return self.op(Op.FULLY_CONNECTED, [x, wt, bt], [out],
                       (Opt.FullyConnectedOptions, options))

    def add(self, a, b, act="NONE"):
        (sa, _), (sb, _) = self.act(a), self.act(b)
        out = self.tensor(self.tensors[a].shape, np.int8, (sa + sb) * 0.8,
                          int(self.rng.integers(-20, 20)))

        def options(bld):
            tflite.AddOptionsStart(bld)
            tflite.AddOptionsAddFusedActivationFunction(bld, getattr(Act, act))
            return tflite.AddOptionsEnd(bld)
        return self.op(Op.ADD, [a, b], [out], (Opt.AddOptions, options))

    def pool(self, x, kind, kernel, stride, padding="VALID", act="NONE"):
        n, h, w, c = self.tensors[x].shape
        if padding == "SAME":
            oh, ow = -(-h // stride[0]), -(-w // stride[1])
        else:
            oh, ow = (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1
        out = self.tensor((n, oh, ow, c), np.int8, *self.act(x))

        def options(b):
            tflite.Pool2DOptionsStart(b)
            tflite.Pool2DOptionsAddPadding(b, Padding.SAME if padding == "SAME" else
                                           Padding.VALID)
            tflite.Pool2DOptionsAddStrideW(b, stride[1])
            tflite.Pool2DOptionsAddStrideH(b, stride[0])
            tflite.Pool2DOptionsAddFilterWidth(b, kernel[1])
            tflite.Pool2DOptionsAddFilterHeight(b, kernel[0])
            tflite.Pool2DOptionsAddFusedActivationFunction(b, getattr(Act, act))
            return tflite.Pool2DOptionsEnd(b)
        code = Op.AVERAGE_POOL_2D if kind == "avg" else Op.MAX_POOL_2D
        return self.op(code, [x], [out], (Opt.Pool2DOptions, options))

    def reshape(self, x, shape):
        out = self.tensor(shape, np.int8, *self.act(x))
        new = self.tensor((len(shape),), np.int32, data=np.asarray(shape, np.int32))

        def options(b):
            tflite.ReshapeOptionsStartNewShapeVector(b, len(shape))
            for d in reversed(shape):
                b.PrependInt32(d)
            vec = b.EndVector()
            tflite.ReshapeOptionsStart(b)
            tflite.ReshapeOptionsAddNewShape(b, vec)
            return tflite.ReshapeOptionsEnd(b)
        return self.op(Op.RESHAPE, [x, new], [out], (Opt.ReshapeOptions, options))

    def softmax(self, x):
        out = self.tensor(self.tensors[x].shape, np.int8, 1 / 256, -128)

        def options(b):
            tflite.SoftmaxOptionsStart(b)
            tflite.SoftmaxOptionsAddBeta(b, 1.0)
            return tflite.SoftmaxOptionsEnd(b)
        return self.op(Op.SOFTMAX, [x], [out], (Opt.SoftmaxOptions, options))

    # --- the flatbuffer --------------------------------------------------------------------
    def build(self, outputs) -> bytes:
        b = flatbuffers.Builder(1024)
        buffers = [self._buffer(b, None)]  # buffer 0: the empty sentinel
        tensors = []
        for i, t in enumerate(self.tensors):
            buf = 0
            if t.data is not None:
                buffers.append(self._buffer(b, np.ascontiguousarray(t.data).tobytes()))
                buf = len(buffers) - 1
            tensors.append(self._tensor(b, t, buf, f"t{i}"))
        codes = sorted({code for code, *_ in self.ops})
        op_codes = []
        for code in codes:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            op_codes.append(tflite.OperatorCodeEnd(b))
        ops = []
        for code, ins, outs, opt_type, opt in self.ops:
            opt_off = opt(b) if opt else None
            vin, vout = self._ints(b, ins), self._ints(b, outs)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, codes.index(code))
            tflite.OperatorAddInputs(b, vin)
            tflite.OperatorAddOutputs(b, vout)
            if opt_off is not None:
                tflite.OperatorAddBuiltinOptionsType(b, opt_type)
                tflite.OperatorAddBuiltinOptions(b, opt_off)
            ops.append(tflite.OperatorEnd(b))
        vt, vo = self._offsets(b, tensors), self._offsets(b, ops)
        vi, vout = self._ints(b, self.inputs), self._ints(b, list(outputs))
        name = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, vt)
        tflite.SubGraphAddInputs(b, vi)
        tflite.SubGraphAddOutputs(b, vout)
        tflite.SubGraphAddOperators(b, vo)
        tflite.SubGraphAddName(b, name)
        graph = tflite.SubGraphEnd(b)
        vg, vc, vb = self._offsets(b, [graph]), self._offsets(b, op_codes), \
            self._offsets(b, buffers)
        desc = b.CreateString("codesign test graph")
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, vc)
        tflite.ModelAddSubgraphs(b, vg)
        tflite.ModelAddDescription(b, desc)
        tflite.ModelAddBuffers(b, vb)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _buffer(b, data: bytes | None):
        vec = None
        if data:
            b.StartVector(1, len(data), 16)
            for byte in reversed(data):
                b.PrependByte(byte)
            vec = b.EndVector()
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        return tflite.BufferEnd(b)

    def _tensor(self, b, t: _Tensor, buf: int, name: str):
        quant = None
        if t.scale:
            sv = self._floats(b, t.scale)
            zv = self._longs(b, t.zero_point)
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, sv)
            tflite.QuantizationParametersAddZeroPoint(b, zv)
            tflite.QuantizationParametersAddQuantizedDimension(b, t.axis)
            quant = tflite.QuantizationParametersEnd(b)
        shape = self._ints(b, list(t.shape))
        nm = b.CreateString(name)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _TYPES[t.dtype])
        tflite.TensorAddBuffer(b, buf)
        tflite.TensorAddName(b, nm)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        return tflite.TensorEnd(b)

    @staticmethod
    def _ints(b, values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(int(v))
        return b.EndVector()

    @staticmethod
    def _longs(b, values):
        b.StartVector(8, len(values), 8)
        for v in reversed(values):
            b.PrependInt64(int(v))
        return b.EndVector()

    @staticmethod
    def _floats(b, values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(float(v))
        return b.EndVector()

    @staticmethod
    def _offsets(b, offsets):
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()


def random_graph(seed: int) -> bytes:
    """A random int8 model: a stem, blocks of convolutions (any kernel, stride, SAME / VALID,
    dilation), depthwise convolutions with multipliers, residual adds of unequal scales, pools,
    then a dense head and, half the time, a softmax."""
    rng = np.random.default_rng(seed)
    g = Graph(rng)
    h, w = int(rng.choice([8, 12, 16, 15])), int(rng.choice([8, 10, 16]))
    x = g.input((1, h, w, int(rng.choice([1, 2, 3]))), float(rng.uniform(0.01, 0.1)),
                int(rng.integers(-128, 60)))
    acts = ["NONE", "RELU", "RELU6"]
    x = g.conv(x, int(rng.choice([4, 8, 16])), (3, 3), (1, 1), "SAME", str(rng.choice(acts)))
    for _ in range(int(rng.integers(2, 5))):
        n, h, w, c = g.tensors[x].shape
        kind = rng.choice(["conv", "dw", "res", "pool"])
        if kind == "conv":
            k = [(1, 1), (3, 3), (5, 5), (1, 3), (3, 1), (2, 2)][int(rng.integers(6))]
            stride = (int(rng.choice([1, 2])),) * 2
            pad = str(rng.choice(["SAME", "VALID"]))
            dil = (2, 2) if k == (3, 3) and stride == (1, 1) and rng.random() < 0.3 else (1, 1)
            if pad == "VALID" and (h < (k[0] - 1) * dil[0] + 2 or w < (k[1] - 1) * dil[1] + 2):
                pad = "SAME"
            x = g.conv(x, int(rng.choice([4, 8, 16, 24])), k, stride, pad, str(rng.choice(acts)),
                       dil, per_channel=bool(rng.random() < 0.8))
        elif kind == "dw":
            x = g.conv(x, None, (3, 3), (int(rng.choice([1, 2])),) * 2, "SAME",
                       str(rng.choice(acts)), depthwise_multiplier=int(rng.choice([1, 1, 2])))
        elif kind == "res":
            a = g.conv(x, c, (3, 3), (1, 1), "SAME", "RELU")
            b = g.conv(a, c, (1, 1), (1, 1), "VALID", "NONE")
            x = g.add(x, b, str(rng.choice(["NONE", "RELU"])))
        elif h >= 4 and w >= 4:
            if rng.random() < 0.5:
                x = g.pool(x, "max", (2, 2), (2, 2), str(rng.choice(["VALID", "SAME"])))
            else:
                x = g.pool(x, "avg", (2, 2), (2, 2))
    n, h, w, c = g.tensors[x].shape
    if rng.random() < 0.5:
        x = g.pool(x, "avg", (h, w), (1, 1))
        h = w = 1
    x = g.reshape(x, (1, h * w * c))
    x = g.fully_connected(x, int(rng.choice([2, 10, 12])), per_channel=bool(rng.random() < 0.3))
    if rng.random() < 0.5:
        x = g.softmax(x)
    return g.build([x])


def quantized_io(g: Graph, x: int, shape) -> tuple[int, int]:
    """A float input quantized into int8 tensor x's format (QUANTIZE), as models with float
    inputs begin: (the float input, x)."""
    f = g.tensor(shape, np.float32)
    g.inputs = [f if t == x else t for t in g.inputs]
    g.op(Op.QUANTIZE, [f], [x])
    return f, x


def dequantized(g: Graph, x: int) -> int:
    """The model's int8 output x dequantized to float (DEQUANTIZE), as float outputs end."""
    out = g.tensor(g.tensors[x].shape, np.float32)
    return g.op(Op.DEQUANTIZE, [x], [out])
