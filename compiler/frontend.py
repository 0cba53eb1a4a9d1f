"""PyTorch -> TVM Relax: torch.export, then Relax import with constants folded."""

from __future__ import annotations

import warnings

import torch
import tvm
from tvm import relax
from tvm.relax.frontend.torch import from_exported_program

from compiler.errors import CompileError


def eval_mode(model: torch.nn.Module) -> torch.nn.Module:
    """model.eval(), except for modules rebuilt from an ExportedProgram (already inference)."""
    try:
        return model.eval()
    except NotImplementedError:
        return model


def export(model: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    model = eval_mode(model)
    try:
        with warnings.catch_warnings():  # torch's own deprecation notice about pytree specs
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
            return torch.export.export(model, (example,))
    except Exception as exc:  # torch raises many kinds; report them as one
        raise CompileError(f"torch.export failed for {type(model).__name__}: {exc}") from exc


def unsupported_ops(program: torch.export.ExportedProgram) -> list[str]:
    """'op (model line)' for every operator TVM's importer has no conversion for."""
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

    known = ExportedProgramImporter().create_convert_map()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
        graph = program.run_decompositions().graph
    found = []
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if name in known or name == "getitem":
            continue
        trace = (node.meta.get("stack_trace") or "").strip().splitlines()
        where = next((line.strip() for line in reversed(trace) if line.strip().startswith("File")),
                     "no source line recorded")
        found.append(f"{name} ({where})")
    return found


def to_relax(program: torch.export.ExportedProgram) -> tvm.IRModule:
    """Import into Relax and fold constant subgraphs (bias reshapes, weight transposes). A
    failed import names the operators nothing can run and their model lines."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
            mod = from_exported_program(program)
    except Exception as exc:
        missing = unsupported_ops(program)
        if missing:
            raise CompileError(f"operator(s) neither the accelerator nor TVM's host import can "
                               f"run: {'; '.join(missing)}") from exc
        raise CompileError(f"TVM could not import the exported program: {exc}") from exc
    return relax.transform.FoldConstant()(mod)
