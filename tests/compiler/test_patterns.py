"""The Relax front end without RTL: batch-norm and padding folds (before / expected modules
compared structurally, and numerically on TVM's VM), and which composite each layer kind's
patterns give a network."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tvm
from torch import nn
from tvm import relax

from compiler.fold import fold_for_tta
from compiler.frontend import export, to_relax
from compiler.kinds import KINDS, kind_of_composite
from compiler.partition import composite_name, offloaded_functions, partition_for_tta, placement


def _param(shape):
    return relax.Var("x", relax.TensorType(shape, "float32"))


def _build(body):
    """A one-input `main` whose body is built by body(bb, x)."""
    bb = relax.BlockBuilder()
    x = _param((1, 2, 5, 5))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(body(bb, x))
        bb.emit_func_output(out)
    return bb.get()


W = np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32)


def test_padding_folds_into_the_convolution():
    def before(bb, x):
        p = bb.emit(relax.op.nn.pad(x, [0, 0, 0, 0, 4, 5, 1, 1], "constant", 0.0))
        return relax.op.nn.conv2d(p, relax.const(W), padding=[1, 0, 1, 0])

    def expected(bb, x):
        return relax.op.nn.conv2d(x, relax.const(W), padding=[5, 1, 6, 1])

    tvm.ir.assert_structural_equal(fold_for_tta(_build(before)).mod["main"],
                                   _build(expected)["main"])


def test_non_zero_padding_stays():
    def before(bb, x):
        p = bb.emit(relax.op.nn.pad(x, [0, 0, 0, 0, 1, 1, 1, 1], "constant", 1.5))
        return relax.op.nn.conv2d(p, relax.const(W))

    mod = _build(before)
    tvm.ir.assert_structural_equal(fold_for_tta(mod).mod["main"], mod["main"])


class _ConvBN(nn.Module):
    """conv -> BN -> ReLU, linear -> BN1d, and a BN with nothing before it (an affine layer)."""

    def __init__(self):
        super().__init__()
        self.pre = nn.BatchNorm2d(2)
        self.conv = nn.Conv2d(2, 4, 3, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 3 * 3, 6)
        self.bn1 = nn.BatchNorm1d(6)
        for bn in (self.pre, self.bn, self.bn1):
            with torch.no_grad():
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
                bn.weight.uniform_(-2, 2)
                bn.bias.uniform_(-1, 1)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(self.pre(x))))
        return F.relu(self.bn1(self.fc(torch.flatten(x, 1))))


def _run(mod, x):
    vm = relax.VirtualMachine(relax.build(mod, target="llvm"), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x))
    while not hasattr(out, "numpy"):
        out = out[0]
    return out.numpy()


def _ops(func) -> list[str]:
    ops = []
    relax.analysis.post_order_visit(
        func, lambda e: ops.append(e.op.name) if isinstance(e, relax.Call)
        and isinstance(e.op, tvm.ir.Op) else None)
    return ops


def test_batch_norm_folds_into_conv_and_dense_and_keeps_its_value():
    torch.manual_seed(0)
    model = _ConvBN().eval()
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 5)).astype(np.float32)
    mod = to_relax(export(model, torch.from_numpy(x)))
    folded = fold_for_tta(mod)
    assert _ops(mod["main"]).count("relax.nn.batch_norm") == 3
    assert "relax.nn.batch_norm" not in _ops(folded.mod["main"])  # the first: x * s + t
    np.testing.assert_allclose(_run(folded.mod, x), _run(mod, x), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(_run(folded.mod, x), model(torch.from_numpy(x)).numpy(),
                                   rtol=1e-4, atol=1e-5)
    # the folded weights remember their modules' weights (the spec names layers by them)
    originals = {tuple(w.shape) for w in folded.origins.values()}
    assert originals == {(4, 2, 3, 3), (6, 36)}


def test_composites_name_the_kinds():
    torch.manual_seed(0)
    model = _ConvBN().eval()
    mod = partition_for_tta(fold_for_tta(to_relax(export(model, torch.zeros(1, 2, 5, 5)))).mod)
    funcs = offloaded_functions(mod)
    order = [p.layer for p in placement(mod) if p.where == "tta"]
    names = [composite_name(funcs[f]) for f in order]
    assert names == ["tta.affine", "tta.conv2d_bias_relu", "tta.dense_flat_bias_relu"]
    assert [kind_of_composite(n).name for n in names] == ["affine", "conv2d", "dense"]
    assert all(p.where == "tta" for p in placement(mod))


class _Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        y = F.relu6(self.dw(x))
        return self.pool(F.relu(self.grouped(y) + x)).mean((2, 3), keepdim=True)


def test_depthwise_grouped_pool_add_and_mean_patterns():
    mod = partition_for_tta(fold_for_tta(to_relax(export(_Mixed().eval(),
                                                         torch.zeros(1, 4, 6, 6)))).mod)
    funcs = offloaded_functions(mod)
    names = [composite_name(funcs[p.layer]) for p in placement(mod) if p.where == "tta"]
    assert names == ["tta.depthwise_conv2d_bias_clip", "tta.conv2d_bias", "tta.add_relu",
                     "tta.pool_max", "tta.pool_global_avg"]


def test_every_kind_has_patterns_named_after_it():
    from compiler.fold import fold_for_tta
    from compiler.frontend import export, to_relax
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Hardswish()).eval()
    mod = fold_for_tta(to_relax(export(model, torch.randn(1, 3, 4, 4)))).mod
    for name, kind in KINDS.items():
        pats = kind.patterns() + kind.module_patterns(mod)  # lut: found in the module
        assert pats, name
        assert all(kind_of_composite(p.name) is kind for p in pats), name


def test_unknown_composite_is_a_clear_error():
    from compiler.errors import CompileError
    with pytest.raises(CompileError, match="names no registered layer kind"):
        kind_of_composite("tta.softmax")
