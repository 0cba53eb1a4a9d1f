"""Search spaces (YAML under configs/search/): the choices a sampler draws a candidate from.

Every field lists its choices. Shared choices apply to every block; `blocks` may narrow them
per position. Optuna sees one fixed set of parameters (the deepest network's), so that model-
based samplers (GP, NSGA-II) work on a constant space; blocks past the drawn depth are unused.

    depth: [2, 3]                    # number of blocks
    width: [8, 16, 32]               # output channels
    kernel: [3, 5]
    stride: [1, 2]
    depthwise: [false, true]         # depthwise-separable blocks
    residual: [false, true]          # add the block's input (1x1 projection if shapes change)
    binarizer: [ste, approxsign, threshold]   # repairs of binary blocks (BlockSpec): the sign,
    norm: [false, true]              # batch norm before the next sign (folded),
    shortcut8: [false, true]         # an 8-bit projection shortcut
    bits: [[8, 8], [2, 2], [1, 1]]   # (weights, input activations) of blocks 2..
    first_bits: [[8, 8], [2, 8]]     # the first block (it reads the 8-bit image)
    head: [flatten, pool]            # the classifier reads all features / their global mean
    classifier_bits: [[8, 8], [2, 8], [1, 8]]
    ensemble: [1, 4]                 # stochastic bitwise members (candidates with 1-2 bit weights)
    blocks: [{stride: [1]}, {width: [16, 32]}]   # optional per-position narrowing
    accelerator: {vector_width: [512, 1024]}     # optional: searched with the network
                                                 # (also dmem_protection: [none, secded])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from codesign.errors import ConfigError
from codesign.models import BINARIZERS, BITS, HEADS, BlockSpec, Candidate
from hw.config import PROTECTION, AccelConfig, FieldReader, parse_accel_config, read_yaml

BLOCK_FIELDS = ("width", "kernel", "stride", "depthwise", "residual", "bits", "binarizer",
                "norm", "shortcut8")
# Accelerator parameters that may be searched, and what a value must be.
ACCEL_FIELDS = {"vector_width": "a power of two in 64..4096", "buses": "1..16",
                "dmem_rows": "a power of two", "dmem_banks": "a power of two",
                "dmem_protection": "none, parity or secded"}
SPACE_DIR = Path(__file__).parent / "configs" / "search"  # configs/ (symlink; copied in wheels)


def _pair(p) -> str:
    return f"{p[0]}/{p[1]}"


def _unpair(s: str) -> tuple[int, int]:
    w, a = s.split("/")
    return int(w), int(a)


@dataclass(frozen=True)
class SearchSpace:
    depth: tuple[int, ...]
    blocks: tuple[dict[str, tuple], ...]  # per position (max depth): field -> choices
    head: tuple[str, ...] = ("flatten",)
    classifier_bits: tuple[tuple[int, int], ...] = ((8, 8),)
    accelerator: dict[str, tuple] = field(default_factory=dict)
    source: str = "<space>"
    ensemble: tuple[int, ...] = (1,)

    def parameters(self) -> dict[str, list]:
        """Optuna parameter name -> choices, for the fields with more than one choice."""
        params = {"depth": list(self.depth)}
        for i, choices in enumerate(self.blocks):
            for f, c in choices.items():
                params[f"b{i}.{f}"] = [_pair(p) for p in c] if f == "bits" else list(c)
        params["head"] = list(self.head)
        params["fc.bits"] = [_pair(p) for p in self.classifier_bits]
        params["ensemble"] = list(self.ensemble)
        params.update({f"accel.{k}": list(v) for k, v in self.accelerator.items()})
        return {k: v for k, v in params.items() if len(v) > 1}

    def check_fixed(self, fixed: dict, where: str) -> None:
        """Parameters given for a trial (a baseline to evaluate first) must exist and be
        among their choices."""
        params = self.parameters()
        for k, v in fixed.items():
            if k not in params:
                raise ConfigError(f"{where}: unknown parameter {k!r}; the space's parameters: "
                                  f"{', '.join(params)}")
            if v not in params[k]:
                raise ConfigError(f"{where}: {k} = {v!r} is not among its choices {params[k]}")

    def architecture_choices(self) -> list[str]:
        """The parameters other than bit widths and the accelerator that have a choice: with
        none, every candidate is one network at different bit widths."""
        return [k for k in self.parameters() if k not in ("fc.bits", "ensemble")
                and not k.endswith(".bits") and not k.startswith("accel.")]

    def parent(self) -> Candidate:
        """The fixed architecture at 8 bits everywhere: the float parent whose weights every
        candidate of a bits-only space starts its quantization-aware fine-tuning from."""
        if choices := self.architecture_choices():
            raise ConfigError(f"{self.source}: a shared parent needs a fixed architecture, "
                              f"but {', '.join(choices)} have several choices")
        blocks = tuple(BlockSpec(**{f: c[0] for f, c in choices.items() if f != "bits"},
                                 bits=(8, 8)) for choices in self.blocks[:self.depth[0]])
        return Candidate(blocks, self.head[0], (8, 8))

    def suggest(self, trial: optuna.Trial) -> tuple[Candidate, dict[str, int]]:
        """A candidate and accelerator overrides drawn from the trial."""
        def pick(name, choices):
            if len(choices) == 1:
                return choices[0]
            return trial.suggest_categorical(name, list(choices))

        depth = pick("depth", self.depth)
        blocks = []
        for i, choices in enumerate(self.blocks):  # all positions, so the space is fixed
            values = {f: pick(f"b{i}.{f}", c) for f, c in choices.items() if f != "bits"}
            values["bits"] = _unpair(pick(f"b{i}.bits", [_pair(p) for p in choices["bits"]]))
            blocks.append(BlockSpec(**values))
        head = pick("head", self.head)
        fc_bits = _unpair(pick("fc.bits", [_pair(p) for p in self.classifier_bits]))
        accel = {k: pick(f"accel.{k}", v) for k, v in self.accelerator.items()}
        ensemble = pick("ensemble", self.ensemble)
        if ensemble > 1 and not Candidate(tuple(blocks[:depth]), head, fc_bits).bitwise():
            ensemble = 1  # all 8-bit: members would be identical (the choice means nothing)
        return Candidate(tuple(blocks[:depth]), head, fc_bits, ensemble), accel

    def encode(self, candidate: Candidate, accel: dict[str, Any]) -> list[float]:
        """An ordinal encoding for regression models: widths, kernels and bits as numbers (log2
        where they double), so that near choices inform each other as categories' one-hot
        columns cannot; one fixed length per space (positions past the depth are zeros)."""
        x: list[float] = []
        for i in range(len(self.blocks)):
            if i >= len(candidate.blocks):
                x += [0.0] * (10 + len(BINARIZERS))
                continue
            b = candidate.blocks[i]
            x += [1.0, math.log2(b.width), b.kernel, b.stride, b.depthwise, b.residual,
                  math.log2(b.bits[0]), math.log2(b.bits[1]), b.norm, b.shortcut8,
                  *(b.binarizer == name for name in BINARIZERS)]
        x += [math.log2(candidate.classifier_bits[0]), math.log2(candidate.classifier_bits[1]),
              *(candidate.head == h for h in HEADS), math.log2(candidate.ensemble)]
        for k in sorted(self.accelerator):
            v = accel.get(k, self.accelerator[k][0])
            x.append(list(PROTECTION).index(v) if k == "dmem_protection" else math.log2(v))
        return [float(v) for v in x]

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna's distribution of each parameter, as `suggest` draws them."""
        probe = optuna.create_study().ask()
        self.suggest(probe)
        return probe.distributions

    def check_accelerator(self, base: AccelConfig) -> None:
        """Every accelerator choice must make a valid config from `base` (fail at load time)."""
        for k, values in self.accelerator.items():
            for v in values:
                self.accel_config(base, {k: v})

    def accel_config(self, base: AccelConfig, overrides: dict[str, int]) -> AccelConfig:
        """`base` with the drawn accelerator parameters, validated like a config file."""
        if not overrides:
            return base
        tag = "-".join(f"{k}{v}" for k, v in sorted(overrides.items()))
        return parse_accel_config({**base.to_dict(), **overrides, "name": f"{base.name}-{tag}"},
                                  f"{self.source}: accelerator {overrides}")


def _choices(r: FieldReader, name: str, valid, what: str, default=None) -> tuple:
    value = r.get(name, default)
    if not isinstance(value, list) or not value:
        raise r.fail(name, f"must be a non-empty list of choices ({what}), not {value!r}")
    bad = [v for v in value if not valid(v)]
    if bad:
        raise r.fail(name, f"invalid choice {bad[0]!r}: each must be {what}")
    return tuple(tuple(v) if isinstance(v, list) else v for v in value)


def _is_int(v, lo=1, hi=None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)


def _is_pair(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(b in BITS for b in v) \
        and not any(isinstance(b, bool) for b in v)


BLOCK_RULES = {  # field -> (valid, description, default)
    "width": (lambda v: _is_int(v, 1, 4096), "an integer in 1..4096", None),
    "kernel": (lambda v: v in (1, 3, 5, 7) and not isinstance(v, bool), "1, 3, 5 or 7", [3]),
    "stride": (lambda v: v in (1, 2) and not isinstance(v, bool), "1 or 2", [1]),
    "depthwise": (lambda v: isinstance(v, bool), "true or false", [False]),
    "residual": (lambda v: isinstance(v, bool), "true or false", [False]),
    "bits": (_is_pair, "a [weights, activations] pair of bits in 1, 2, 8", [[8, 8]]),
    "binarizer": (lambda v: v in BINARIZERS, " or ".join(BINARIZERS), ["ste"]),  # BNN repairs
    "norm": (lambda v: isinstance(v, bool), "true or false", [False]),
    "shortcut8": (lambda v: isinstance(v, bool), "true or false", [False]),
}


def parse_space(data: Any, where: str) -> SearchSpace:
    r = FieldReader(data, where)
    r.check_known(("depth", *BLOCK_FIELDS, "first_bits", "head", "classifier_bits", "blocks",
                   "accelerator", "ensemble"))
    depth = _choices(r, "depth", lambda v: _is_int(v, 1, 32), "an integer in 1..32")
    shared = {f: _choices(r, f, valid, what, default)
              for f, (valid, what, default) in BLOCK_RULES.items()
              if f != "width" or "width" in r.data}  # widths may be given per block only
    first_bits = _choices(r, "first_bits", _is_pair, BLOCK_RULES["bits"][1], [[8, 8]])
    if any(a != 8 for _, a in first_bits):
        raise r.fail("first_bits", f"the first block reads the 8-bit image: its activation bits "
                                   f"must be 8, not {[list(p) for p in first_bits]}")
    per_block = r.get("blocks", [])
    if not isinstance(per_block, list) or len(per_block) > max(depth):
        raise r.fail("blocks", f"must be a list of at most max(depth) = {max(depth)} mappings, "
                               f"not {per_block!r}")
    blocks = []
    for i in range(max(depth)):
        choices = dict(shared, bits=first_bits if i == 0 else shared["bits"])
        if i < len(per_block):
            b = FieldReader(per_block[i] if per_block[i] is not None else {},
                            f"{where}: blocks[{i}]")
            b.check_known(BLOCK_FIELDS)
            for f in b.data:
                valid, what, _ = BLOCK_RULES[f]
                choices[f] = _choices(b, f, valid, what)
            if i == 0 and any(a != 8 for _, a in choices["bits"]):
                raise b.fail("bits", "the first block reads the 8-bit image: activation bits 8")
        if "width" not in choices:
            raise r.fail("width", f"missing: no width choices for block {i} (give 'width', or "
                                  f"'width' in blocks[{i}])")
        blocks.append(choices)
    head = _choices(r, "head", lambda v: v in HEADS, " or ".join(HEADS), ["flatten"])
    fc_bits = _choices(r, "classifier_bits", _is_pair, BLOCK_RULES["bits"][1], [[8, 8]])
    accel = FieldReader(r.get("accelerator", {}) or {}, f"{where}: accelerator")
    accel.check_known(tuple(ACCEL_FIELDS))
    accel_choices = {k: _choices(accel, k, (lambda v: v in PROTECTION) if k == "dmem_protection"
                                 else _is_int, ACCEL_FIELDS[k]) for k in accel.data}
    ensemble = _choices(r, "ensemble", lambda v: _is_int(v, 1, 64), "an integer in 1..64", [1])
    return SearchSpace(tuple(depth), tuple(blocks), head, fc_bits, accel_choices, where,
                       ensemble)


def space_path(path: str | Path) -> Path:
    """A bare name such as `fashion` means `configs/search/fashion.yaml`."""
    p = Path(path)
    return SPACE_DIR / f"{p}.yaml" if not p.suffix and not p.exists() else p


def load_space(path: str | Path) -> SearchSpace:
    p = space_path(path)
    known = ", ".join(sorted(f.stem for f in SPACE_DIR.glob("*.yaml")))
    return parse_space(read_yaml(p, f"search space (shipped: {known})"), str(p))
