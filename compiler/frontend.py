"""PyTorch -> TVM Relax: torch.export, then Relax import with constants folded."""

from __future__ import annotations

import warnings

import torch
import tvm
from tvm import relax
from tvm.relax.frontend.torch import from_exported_program

from compiler.errors import CompileError


def export(model: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    model = model.eval()
    try:
        with warnings.catch_warnings():  # torch's own deprecation notice about pytree specs
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
            return torch.export.export(model, (example,))
    except Exception as exc:  # torch raises many kinds; report them as one
        raise CompileError(f"torch.export failed for {type(model).__name__}: {exc}") from exc


def to_relax(program: torch.export.ExportedProgram) -> tvm.IRModule:
    """Import into Relax and fold constant subgraphs (bias reshapes, weight transposes)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
            mod = from_exported_program(program)
    except Exception as exc:
        raise CompileError(f"TVM could not import the exported program: {exc}") from exc
    return relax.transform.FoldConstant()(mod)
