"""The quantization spec: bit widths per layer (a default and overrides by module path or glob),
and optionally fixed activation scales (from quantization-aware training).

YAML form:

    default: {weights: 8, activations: 8}   # scales: per_channel (default) | per_tensor
    layers:                       # first matching key wins; exact paths before globs
      conv1: {weights: 8, activations: 8}
      "blocks.*.conv*": {weights: 1, activations: 1}

`activations` is the bit width of the layer's *input*; the previous layer writes that format.
`scales`: one weight scale per output channel, or one for the whole layer.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path


from compiler.errors import CompileError
from compiler.intsem import BITS


@dataclass(frozen=True)
class LayerBits:
    weights: int = 8
    activations: int = 8
    scales: str = "per_channel"  # weight scales: per_channel | per_tensor (one per layer)


@dataclass
class QuantSpec:
    default: LayerBits = field(default_factory=LayerBits)
    layers: dict[str, LayerBits] = field(default_factory=dict)
    act_scales: dict[str, float] = field(default_factory=dict)  # layer -> its input's scale
    source: str = "<spec>"

    def bits(self, name: str) -> LayerBits:
        if name in self.layers:
            return self.layers[name]
        for pattern, bits in self.layers.items():
            if fnmatch.fnmatchcase(name, pattern):
                return bits
        return self.default

    def unused_keys(self, weighted: list[str], every: list[str] | None = None) -> list[str]:
        """Keys of `layers` that name none of the weighted layers, and of `act_scales` none of
        the layers (`every`, default the weighted ones)."""
        def unused(keys, names):
            return [k for k in keys if not any(k == n or fnmatch.fnmatchcase(n, k)
                                               for n in names)]
        return unused(self.layers, weighted) + unused(self.act_scales, every or weighted)

    @classmethod
    def from_dict(cls, data: dict | None, source: str = "<spec>") -> "QuantSpec":
        data = data or {}
        if not isinstance(data, dict):
            raise CompileError(f"{source}: a quantization spec is a mapping with 'default' "
                               f"and 'layers'")
        unknown = set(data) - {"default", "layers", "act_scales"}
        if unknown:
            raise CompileError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}; "
                               f"allowed: default, layers, act_scales")
        default = _bits(data.get("default", {}), f"{source}: default")
        layers_raw = data.get("layers") or {}
        if not isinstance(layers_raw, dict):
            raise CompileError(f"{source}: layers: a mapping of layer to bits, not "
                               f"{layers_raw!r}")
        layers = {str(k): _bits(v, f"{source}: layers.{k}", default)
                  for k, v in layers_raw.items()}
        raw = data.get("act_scales") or {}
        if not isinstance(raw, dict):
            raise CompileError(f"{source}: act_scales: a mapping of layer to scale, not "
                               f"{raw!r}")
        scales = {}
        for k, v in raw.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
                raise CompileError(f"{source}: act_scales.{k}: {v!r}; a scale is a positive "
                                   f"number")
            scales[str(k)] = float(v)
        return cls(default, layers, scales, source)

    @classmethod
    def load(cls, path: str | Path) -> "QuantSpec":
        from hw.config import read_yaml
        from hw.errors import ConfigError
        try:
            data = read_yaml(path, "quantization spec")
        except ConfigError as exc:
            raise CompileError(str(exc)) from None
        return cls.from_dict(data, str(path))


def _bits(entry, where: str, default: LayerBits = LayerBits()) -> LayerBits:
    if not isinstance(entry, dict):
        raise CompileError(f"{where}: expected a mapping like {{weights: 8, activations: 8}}, "
                           f"got {entry!r}")
    unknown = set(entry) - {"weights", "activations", "scales"}
    if unknown:
        raise CompileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                           f"allowed: weights, activations, scales")
    out = {}
    for key in ("weights", "activations"):
        value = entry.get(key, getattr(default, key))
        if value not in BITS:
            raise CompileError(f"{where}.{key}: {value!r} bits; allowed: "
                               f"{', '.join(map(str, BITS))}")
        out[key] = value
    scales = entry.get("scales", default.scales)
    if scales not in SCALES:
        raise CompileError(f"{where}.scales: {scales!r}; allowed: {', '.join(SCALES)}")
    return LayerBits(**out, scales=scales)


SCALES = ("per_channel", "per_tensor")


def as_spec(quant) -> QuantSpec:
    """A QuantSpec from a spec, a dict, a YAML path, or None (all 8-bit)."""
    if quant is None:
        return QuantSpec()
    if isinstance(quant, QuantSpec):
        return quant
    if isinstance(quant, (str, Path)):
        return QuantSpec.load(quant)
    return QuantSpec.from_dict(quant)
