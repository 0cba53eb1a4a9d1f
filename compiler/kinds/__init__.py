"""The registry of accelerator layer kinds, keyed by composite pattern name (`tta.<kind>...`).

Adding a kind is one `LayerKind` subclass registered here: its pattern table entries, reader,
quantizer, references and plan (see `compiler.kinds.base`).
"""

from __future__ import annotations

import numpy as np

from compiler.errors import CompileError
from compiler.kinds.base import CODEGEN, FloatLayer, LayerKind, TensorQuant
from compiler.kinds.conv import ConvKind, DenseKind, DepthwiseKind
from compiler.kinds.lut import LutKind
from compiler.kinds.moves import ConcatKind, GatherKind, ResizeKind
from compiler.kinds.rows import AddKind, AffineKind, BilinearKind, PoolKind, ScaleKind
from compiler.layer_ir import Layer

KINDS: dict[str, LayerKind] = {k.name: k for k in (
    ConvKind(), DepthwiseKind(), DenseKind(), PoolKind(), AddKind(), AffineKind(), ResizeKind(),
    BilinearKind(), ConcatKind(), LutKind(), ScaleKind(), GatherKind())}

__all__ = ["CODEGEN", "FloatLayer", "KINDS", "LayerKind", "TensorQuant", "get_kind",
           "kind_of_composite", "pattern_table", "reference", "fake_quant"]


def get_kind(name: str) -> LayerKind:
    if name not in KINDS:
        raise CompileError(f"unknown layer kind {name!r}; registered: {', '.join(KINDS)}")
    return KINDS[name]


def kind_of_composite(composite: str) -> LayerKind:
    """The kind of a composite function named `tta.<kind>[_suffix]`."""
    stem = composite.removeprefix(f"{CODEGEN}.")
    for name in sorted(KINDS, key=len, reverse=True):
        if stem == name or stem.startswith(name + "_"):
            return KINDS[name]
    raise CompileError(f"composite {composite!r} names no registered layer kind "
                       f"({', '.join(KINDS)})")


def pattern_table(mod=None):
    """The patterns made for module `mod` (`LayerKind.module_patterns`: whole structures
    found in it, an element-wise chain ending in an add, say), then every kind's own (longer
    patterns of a kind first)."""
    table = [p for kind in KINDS.values() for p in kind.module_patterns(mod)] \
        if mod is not None else []
    return table + [p for kind in KINDS.values() for p in kind.patterns()]


def reference(layer: Layer, *xs: np.ndarray) -> np.ndarray:
    """The numpy integer reference of any layer."""
    return get_kind(layer.kind).reference(layer, *xs)


def fake_quant(layer: Layer, *xs: np.ndarray) -> np.ndarray:
    return get_kind(layer.kind).fake_quant(layer, *xs)
