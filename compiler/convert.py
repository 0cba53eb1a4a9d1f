"""Format changes between accelerator layers, on the accelerator.

A layer writes its output in the format its readers take when it can: a convolution or dense
layer packs 1-2 bit outputs itself. Where it cannot -- an add, a pooling, a lookup table or a
clip before 1-2 bit inputs, or a tensor read at several bit widths (a residual block's int8 add
beside its ternary convolution) -- the host used to requantize between two runs. Instead, an
identity depthwise 1x1 convolution (weights 1 at 8 bits, no bias: `convert_N`) is inserted
before those readers: it reads the int8 tensor and its post-processing writes the readers'
bits (sign, ternary thresholds), in the same run as its neighbours.

The conversions are decided from bit widths alone (before calibration), as `assign_formats`
will decide them; one the formats then make unnecessary only costs its layer's cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from compiler.errors import CompileError
from compiler.kinds import get_kind
from compiler.kinds.base import sign_like
from compiler.lower import Node
from compiler.partition import offloaded_functions, partition_for_tta

PREFIX = "convert"
HOST_WIDENS = {(1, 8)}  # (bits, storage) no layer writes: binary values as bytes


@dataclass(frozen=True)
class Conversion:
    producer: str  # offloaded function whose output is converted
    bits: int  # the readers' bits (1 or 2)
    readers: tuple[tuple[str, int], ...]  # (offloaded function, input index)

    def to_data(self) -> dict:
        return {"producer": self.producer, "bits": self.bits,
                "readers": [[f, i] for f, i in self.readers]}

    @classmethod
    def from_data(cls, d, where: str) -> "Conversion":
        """A conversion read back from a compiled directory (data only, checked)."""
        try:
            readers = tuple((str(f), int(i)) for f, i in d["readers"])
            made = cls(str(d["producer"]), int(d["bits"]), readers)
        except (KeyError, TypeError, ValueError) as exc:
            raise CompileError(f"{where}: a conversion is not one ({type(exc).__name__}: "
                               f"{exc})") from None
        if made.bits not in (1, 2) or not readers:
            raise CompileError(f"{where}: a conversion to {made.bits} bits for "
                               f"{len(readers)} readers")
        return made


def writes_directly(node: Node, kind_weighted: bool, bits: int) -> bool:
    """Whether `node` can write `bits`-bit values for all its readers itself (as
    `assign_formats` lets it): a conv / dense layer with no activation, a ReLU or a clip from 0
    before ternary inputs (the ternary output's own `relu`), a clip around 0 before binary
    inputs (its sign is the pre-activation's)."""
    act = node.float_layer.act
    if not kind_weighted or node.host_use:
        return False
    if not act:
        return True
    if bits == 2:
        return act[0] == "relu" or act[1] == 0
    return sign_like(act)


def conversions(nodes: list[Node], funcs: dict[str, str], in_format) -> list[Conversion]:
    """The conversions a network needs. `funcs`: layer name -> offloaded function;
    `in_format(name, index)`: (bits, storage) of that layer's input (`TensorQuant`)."""
    found = []
    for node in nodes:
        if len(node.float_layer.out_shape) != 3:
            continue  # a vector (dense layers): the host converts it (an identity dense
            #           layer would cost N^2 MACs)
        reads = [(c, i, in_format(c, i)) for c, i in node.consumers]
        low = sorted({f for _, _, f in reads if f[0] < 8 and f not in HOST_WIDENS})
        if not low:
            continue
        weighted = get_kind(node.float_layer.kind).weighted
        if len({f for _, _, f in reads}) == 1 and writes_directly(node, weighted, low[0][0]):
            continue
        for form in low:
            found.append(Conversion(funcs[node.name], form[0], tuple(
                (funcs[c], i) for c, i, f in reads if f == form)))
    return found


def _identity_function(sinfo: relax.TensorType) -> relax.Function:
    """The offloaded function of an identity depthwise 1x1 convolution over a tensor of
    `sinfo` (partitioned like any layer, so every stage reads it as one)."""
    shape = [int(d) for d in sinfo.shape]
    c = shape[1]
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            w = relax.const(np.ones((c, 1, 1, 1), np.float32))
            y = bb.emit(relax.op.nn.conv2d(x, w, groups=c))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    found = offloaded_functions(partition_for_tta(bb.get()))
    assert len(found) == 1, "an identity convolution is one layer"
    return next(iter(found.values()))


def insert_conversions(mod: tvm.IRModule, wanted: list[Conversion]
                       ) -> tuple[tvm.IRModule, dict[str, Conversion]]:
    """`mod` with a call of a new offloaded function after each conversion's producer, read by
    its readers in place of the producer's output; the new functions' names -> conversion."""
    builder = relax.BlockBuilder(mod)
    taken = {gv.name_hint for gv in mod.functions}
    by_producer: dict[str, list[Conversion]] = {}
    for w in wanted:
        by_producer.setdefault(w.producer, []).append(w)
    made: dict[str, Conversion] = {}
    swap: dict[tuple[str, int], relax.Var] = {}  # (reader, index) -> the converted value
    blocks = []
    for block in mod["main"].body.blocks:
        dataflow = isinstance(block, relax.DataflowBlock)
        bindings = []
        for binding in block.bindings:
            value = binding.value
            name = value.op.name_hint if isinstance(value, relax.Call) and \
                isinstance(value.op, tvm.ir.GlobalVar) else None
            if name is not None and any((name, i) in swap for i in range(len(value.args))):
                args = [swap.get((name, i), a) for i, a in enumerate(value.args)]
                value = relax.Call(value.op, args, value.attrs, value.ty_args)
                binding = relax.VarBinding(binding.var, value)
            bindings.append(binding)
            for w in by_producer.get(name, []):
                fname = next(f"{PREFIX}_{k}" for k in range(len(taken) + 1)
                             if f"{PREFIX}_{k}" not in taken)
                taken.add(fname)
                sinfo = binding.var.ty
                gv = builder.add_func(_identity_function(sinfo).with_attr("global_symbol",
                                                                          fname), fname)
                var = (relax.DataflowVar if dataflow else relax.Var)(fname, sinfo)
                bindings.append(relax.VarBinding(var, relax.Call(gv, [binding.var])))
                made[fname] = w
                for reader in w.readers:
                    swap[reader] = var
        blocks.append(relax.DataflowBlock(bindings) if dataflow
                      else relax.BindingBlock(bindings))
    if not made:
        return mod, made
    out, main = builder.get(), mod["main"]
    out["main"] = relax.Function(main.params, relax.SeqExpr(blocks, main.body.body),
                                 main.ret_ty, main.is_pure, main.attrs, main.span)
    return out, made
