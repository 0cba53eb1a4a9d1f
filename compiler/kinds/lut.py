"""Element-wise activations through the vector unit's lookup table: any function of one int8
tensor (sigmoid, tanh, hardswish, hardsigmoid, SiLU, GELU, ELU, softplus, Mish, ... however the
model's ops spell it) is 256 bytes computed at compile time from the float function and the
two scales (hw/ISA.md: llut, lut).

The frontend leaves such a function as a chain of element-wise Relax ops whose only tensor
input is x (the others scalar constants): hardswish is add, clip, clip, multiply, divide.
`chain_patterns` finds every such chain in the module with no intermediate value used
outside it and gives the partitioner a pattern for each; the layer reads the chain as a small
program (`Step`s) that float_forward and the table evaluate (in float64, torch's kernels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard
from tvm.relax.transform import PatternCheckContext

from compiler.errors import CompileError
from compiler.intsem import QMAX, QMIN
from compiler.kinds.base import (NO_HINTS, FloatLayer, LayerKind, batch_one, const_value,
                                 fusion, is_constant, shape)
from compiler.layer_ir import Lut, Output

_UNARY = {  # Relax op -> torch, on float64
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp, "log": torch.log,
    "erf": torch.erf, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "negative": torch.neg,
    "abs": torch.abs, "square": torch.square, "sin": torch.sin, "cos": torch.cos,
    "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "sign": torch.sign,
    "nn.relu": F.relu, "nn.silu": F.silu, "nn.gelu": F.gelu,
    "nn.gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "nn.softplus": F.softplus,
}
_BINARY = {
    "add": torch.add, "subtract": torch.sub, "multiply": torch.mul, "divide": torch.div,
    "power": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum,
    "greater": torch.gt, "less": torch.lt, "greater_equal": torch.ge, "less_equal": torch.le,
    "equal": torch.eq, "not_equal": torch.ne,
}
_OTHER = {"clip", "nn.leakyrelu", "where", "astype"}
ELEMENTWISE = set(_UNARY) | set(_BINARY) | _OTHER


@dataclass(frozen=True)
class Step:
    """One op of the chain: op(args), each arg the chain's input ('x'), an earlier step's
    value (its index) or a scalar constant (a float)."""

    op: str
    args: tuple
    attr: float = 0.0  # leakyrelu's alpha


def run_steps(steps: tuple[Step, ...], x: np.ndarray) -> np.ndarray:
    """The chain on float values (float64)."""
    vals: list = []
    xt = torch.from_numpy(np.asarray(x, np.float64))

    def arg(a):
        if isinstance(a, str):
            return xt
        if isinstance(a, int):
            return vals[a]
        return torch.tensor(float(a), dtype=torch.float64)

    for s in steps:
        a = [arg(v) for v in s.args]
        if s.op in _UNARY:
            y = _UNARY[s.op](a[0])
        elif s.op in _BINARY:
            y = _BINARY[s.op](a[0], a[1])
        elif s.op == "clip":
            y = torch.clamp(a[0], float(a[1]), float(a[2]))
        elif s.op == "nn.leakyrelu":
            y = F.leaky_relu(a[0], s.attr)
        elif s.op == "where":
            y = torch.where(a[0].bool(), a[1], a[2])
        else:  # astype: the chain computes in float64 (a bool from a compare stays one)
            y = a[0]
        vals.append(y if y.dtype == torch.bool else y.to(torch.float64))
    return vals[-1].to(torch.float64).numpy()


def _is_prim(e) -> bool:
    """An op's scalar argument (clip's bounds): an IntImm / FloatImm, not a tensor."""
    return type(e).__name__ in ("IntImm", "FloatImm")


def _scalar(e) -> float | None:
    """A scalar's value (a constant tensor of one element, or a prim), else None."""
    if _is_prim(e):
        return float(e.value)
    if is_constant(e):
        v = const_value(e)
        return float(v.reshape(-1)[0]) if v.size == 1 else None
    return None


def _op(call) -> str | None:
    if isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.Op):
        name = call.op.name.removeprefix("relax.")
        return name if name in ELEMENTWISE else None
    return None


def _same_shape(a, b) -> bool:
    sa, sb = (getattr(e.ty, "shape", None) for e in (a, b))
    return sa is not None and sb is not None and [int(d) for d in sa] == [int(d) for d in sb]


def _same(a, b) -> bool:
    """The same Relax node (Python wrappers of one node are distinct objects)."""
    return a is not None and a.same_as(b)


def _bias_add(call, bound: dict) -> bool:
    """A constant added to a convolution's or a matrix product's output: its bias (of one
    channel, it looks scalar), which the layer's own pattern takes."""
    if _op(call) != "add":
        return False
    producers = [bound.get(a) for a in call.args if isinstance(a, relax.Var)]
    return any(isinstance(p, relax.Call) and isinstance(p.op, tvm.ir.Op)
               and p.op.name in ("relax.nn.conv2d", "relax.matmul") for p in producers)


def _chains(mod: tvm.IRModule) -> list[tuple[relax.Var, list[relax.Var]]]:
    """(root, members in order) of every chain: element-wise bindings of one tensor input x
    (the rest scalars), shaped as x, whose values other than the root's are used only inside
    it, with at least one op that is not a bare ReLU / clip (the producers fuse those)."""
    main = mod["main"]
    bound: dict = {}
    order: list = []
    for block in main.body.blocks:
        for b in block.bindings:
            bound[b.var] = b.value
            order.append(b.var)
    users: dict = {v: [] for v in order}

    def uses(expr) -> list:
        found = []
        relax.analysis.post_order_visit(
            expr, lambda e: found.append(e) if isinstance(e, relax.Var) else None)
        return found

    for v in order:
        for u in uses(bound[v]):
            if u in users:
                users[u].append(v)
    for u in uses(main.body.body):
        if u in users:
            users[u].append(None)  # the network's output
    src: dict = {}  # member -> the chain's input x
    for v in order:
        call = bound[v]
        if _op(call) is None or _bias_add(call, bound):
            continue
        sources = set()
        for a in call.args:
            if _scalar(a) is not None:
                continue
            if not isinstance(a, relax.Var):
                sources = None
                break
            sources.add(src.get(a, a))
        if sources and len(sources) == 1:
            x = sources.pop()
            if isinstance(x, relax.Var) and _same_shape(call, x) and \
                    getattr(call.ty, "dtype", "") in ("float32", "bool"):
                src[v] = x
    chains = []
    for v, x in src.items():
        if all(u is not None and _same(src.get(u), x) for u in users[v]):
            continue  # used only inside its chain: not a root
        members, todo = [], [v]
        while todo:  # the cone from x to v
            m = todo.pop()
            if m in members:
                continue
            members.append(m)
            todo += [a for a in bound[m].args if isinstance(a, relax.Var) and _same(src.get(a), x)]
        inner = [m for m in members if m is not v]
        if any(u not in members for m in inner for u in users[m]):
            continue
        ops = {_op(bound[m]) for m in members}
        if ops <= {"nn.relu", "clip"} or getattr(bound[v].ty, "dtype", "") != "float32":
            continue
        chains.append((v, sorted(members, key=order.index)))
    return chains


def chain_patterns(mod: tvm.IRModule):
    """A fusion pattern per distinct chain structure of `mod`; each checks that it matched one
    of the chains found (a chain's structure elsewhere, used outside, stays on the host)."""
    chains = _chains(mod)
    roots = [root for root, _ in chains]  # bound variables outlive the partitioner's rewrites
    bound = {b.var: b.value for block in mod["main"].body.blocks for b in block.bindings}
    patterns, seen = [], set()
    for root, members in chains:
        x = wildcard()
        pats: dict = {}

        def pattern(e, members=members, pats=pats, x=x):
            if isinstance(e, relax.Var) and e in members:
                if e not in pats:
                    call = bound[e]
                    pats[e] = is_op(call.op.name)(*[pattern(a) for a in call.args])
                return pats[e]
            if _scalar(e) is not None:
                return wildcard() if _is_prim(e) else is_const()
            return x

        p = pattern(root)
        key = str(p)
        if key in seen:
            continue
        seen.add(key)

        def check(ctx: PatternCheckContext, size=len(members)) -> bool:
            found = ctx.annotated_expr["root"]
            var = ctx.value_to_bound_var.get(found)
            return var is not None and any(var.same_as(r) for r in roots) and \
                len(ctx.matched_bindings) == size and batch_one(found)
        patterns.append(fusion(f"lut_{len(patterns)}", p, p, check))
    return patterns


def read_steps(func: relax.Function) -> tuple[tuple[Step, ...], relax.Var]:
    """The chain inside an offloaded function as steps, and its input (the composite
    function's parameter)."""
    inner: list = []
    relax.analysis.post_order_visit(
        func, lambda e: inner.append(e) if isinstance(e, relax.Function) and e.attrs
        and "Composite" in e.attrs else None)
    body = inner[0] if inner else func
    x = body.params[0]
    index: dict = {}
    steps = []
    for block in body.body.blocks:
        for b in block.bindings:
            c = b.value
            args = []
            for a in c.args:
                if a.same_as(x):
                    args.append("x")
                elif a in index:
                    args.append(index[a])
                elif _scalar(a) is not None:
                    args.append(_scalar(a))
                else:
                    raise CompileError(f"lookup-table chain: an argument of {c.op.name} is "
                                       f"neither its input, an earlier op nor a scalar")
            alpha = float(c.attrs.alpha) if c.op.name == "relax.nn.leakyrelu" else 0.0
            index[b.var] = len(steps)
            steps.append(Step(c.op.name.removeprefix("relax."), tuple(args), alpha))
    return tuple(steps), x


def lut_table(steps: tuple[Step, ...], in_scale: float, out_scale: float,
              in_zero: int = 0, out_zero: int = 0) -> np.ndarray:
    """The 256 output bytes, indexed by the input byte (unsigned): f of each int8 value at the
    input's scale, rounded to the output's (half to even) and clipped."""
    q = np.arange(256).astype(np.uint8).view(np.int8).astype(np.float64)
    y = run_steps(steps, (q - in_zero) * in_scale)
    y = np.nan_to_num(y, nan=0.0, posinf=QMAX * out_scale * 2, neginf=QMIN * out_scale * 2)
    return np.clip(np.round(y / out_scale) + out_zero, QMIN, QMAX).astype(np.int8)


class LutKind(LayerKind):
    """y = table[x]: an element-wise function of one int8 tensor."""

    name = "lut"
    passes_values = False

    def patterns(self):
        return []  # per module: `chain_patterns`

    def module_patterns(self, mod):
        return chain_patterns(mod)

    def read(self, func, calls):
        raise CompileError(f"{func}: a lookup-table layer is read from its function")

    def read_function(self, name, func):
        steps, x = read_steps(func)
        return FloatLayer(self.name, name, (shape(x),), shape(x), steps=steps)

    def float_forward(self, f, *xs):
        return run_steps(f.steps, xs[0]).astype(np.float32).reshape(f.out_shape)

    def quantize(self, f, name, w_bits, ins, out, per_tensor=False):
        s_in, s_out = float(ins[0].scale), float(out.scale)
        table = lut_table(f.steps, s_in, s_out)
        grid = tuple(f.out_shape) + (1,) * (3 - len(f.out_shape))
        return Lut(name, grid, table, s_in,
                   Output("int8", np.full(grid[0], s_out)), f.func, tuple(f.out_shape))

    def accumulates(self, layer):
        return False

    def accumulate(self, layer, *xs):
        return np.asarray(xs[0], np.int64).reshape((-1, *layer.out_shape))

    def output(self, layer, acc, out=None):
        x = np.asarray(acc, np.int64).astype(np.int8).view(np.uint8)
        return layer.table[x].reshape((len(acc), *layer.out_shape))

    def fake_quant(self, layer, *xs):
        from compiler.intsem import quantize_act
        q = quantize_act(np.asarray(xs[0]).reshape(layer.out_shape), layer.in_scale)
        return layer.table[q.view(np.uint8)].astype(np.float64) * float(layer.out.scale[0])

    def plan(self, index, layer, config, mem, host_input=False, hints=NO_HINTS):
        from compiler.plans.rows import LutPlan
        return LutPlan(index, layer, config, mem)

    def describe(self, layer):
        return f"{layer.out_shape} through a table"

    def manifest(self, layer):
        return {"table": "256 bytes"}

