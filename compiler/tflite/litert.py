"""LiteRT as the judge: the TFLite interpreter with its reference kernels (BUILTIN_REF, the
specification TFLite Micro and CMSIS-NN compute the same), every intermediate tensor kept.

`LiteRT(path).run(x)` returns the model's outputs and every tensor; `compare` checks a compiled
network's layer outputs against them, naming the first layer that differs, where and by how much.
The default interpreter (XNNPACK) and the optimized kernels round differently: `kernels=` picks
one of them to report their agreement beside the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.errors import CompileError

KERNELS = ("reference", "builtin", "default")


class LiteRT:
    def __init__(self, path: str | Path, kernels: str = "reference"):
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError as exc:  # a test dependency (requirements.lock installs it)
            raise CompileError(f"LiteRT is not installed (pip install ai-edge-litert): "
                               f"{exc}") from None
        resolver = {"reference": OpResolverType.BUILTIN_REF,
                    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                    "default": OpResolverType.AUTO}[kernels]
        try:
            self.interpreter = Interpreter(model_path=str(path),
                                           experimental_op_resolver_type=resolver,
                                           experimental_preserve_all_tensors=True)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            text = str(exc).strip().splitlines()
            raise CompileError(f"{path}: LiteRT cannot load it "
                               f"({text[0] if text else type(exc).__name__})") from None
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()
        self.ops = self.interpreter._get_ops_details()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """(the first output, every tensor by index) for one input (the model's dtype and
        shape, batch axis optional)."""
        it = self.interpreter
        it.set_tensor(self.input["index"], np.asarray(x, self.input["dtype"]).reshape(
            self.input["shape"]))
        it.invoke()
        tensors = {}
        for t in it.get_tensor_details():
            try:
                tensors[t["index"]] = it.get_tensor(t["index"])
            except ValueError:  # tensors without data (scratch, constants folded away)
                continue
        return it.get_tensor(self.outputs[0]["index"]), tensors

    def op_output(self, op_index: int) -> int:
        return int(self.ops[op_index]["outputs"][0])


@dataclass(frozen=True)
class Mismatch:
    layer: str
    where: tuple[int, ...]  # CHW index of the first differing value
    ours: int
    theirs: int
    count: int  # values that differ
    max_diff: int

    def __str__(self) -> str:
        return (f"layer {self.layer}: {self.count} value(s) differ from LiteRT's tensor, the "
                f"first at (c, h, w) {self.where}: {self.ours} vs {self.theirs}; at most "
                f"{self.max_diff} apart")


def compare(int_outputs: dict[str, np.ndarray], tensors: dict[int, np.ndarray],
            litert: LiteRT) -> Mismatch | None:
    """The first layer (in the order given) whose int8 output differs from LiteRT's tensor of
    its operator (layers are named `<op>_<index>`)."""
    for name, ours in int_outputs.items():
        op_index = int(name.rsplit("_", 1)[1])
        theirs = tensors[litert.op_output(op_index)][0]
        theirs = np.moveaxis(theirs, -1, 0) if theirs.ndim == 3 else theirs.reshape(-1)
        ours = np.asarray(ours).reshape(theirs.shape)
        diff = ours.astype(np.int64) - theirs.astype(np.int64)
        if np.any(diff):
            first = tuple(int(i) for i in np.argwhere(diff)[0])
            return Mismatch(name, first, int(ours[first]), int(theirs[first]),
                            int(np.count_nonzero(diff)), int(np.abs(diff).max()))
    return None
