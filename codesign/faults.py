"""The fault model: bit flips, at a bit-error rate (BER), in the values the accelerator holds,
each in the format it stores them.

Sites (`SITES`):
- weights: the packed weights of conv and dense layers, 8-bit two's complement, ternary 2-bit
  codes (bit 0 nonzero, bit 1 negative: code 10 reads as 0) or binary bits (1 = +1);
- params: the post-processing parameters: int32 biases, requantization multipliers (32-bit
  signed words), shifts (6-bit signed), ternary thresholds (int32);
- activations: every layer's output as it writes it (int8, ternary codes, bits; int32 when the
  host reads the accumulators);
- accumulators: a layer's int32 accumulators before post-processing.

Every stored bit flips independently with probability BER, once per injection (one faulty
inference). Weights and params model errors of the memory that holds them, activations of the
memory between layers, accumulators of the vector unit's registers. A value the compiler keeps
in several places (weights repeated per lane group, identical parameter rows shared) is one
logical word here: a flip changes it wherever it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from codesign.errors import CodesignError
from compiler.kinds import get_kind
from compiler.layer_ir import Layer

SITES = ("weights", "params", "activations", "accumulators")
FORMAT_BITS = {"int8": 8, "int32": 32, "shift": 6, "ternary": 2, "binary": 1}
_BY_BITS = {8: "int8", 2: "ternary", 1: "binary", 32: "int32"}


def encode(values: np.ndarray, fmt: str) -> np.ndarray:
    """Signed values -> their stored codes (uint64)."""
    v = np.asarray(values, np.int64)
    if fmt == "ternary":
        return ((v != 0) | ((v < 0) << 1)).astype(np.uint64)
    if fmt == "binary":
        return (v > 0).astype(np.uint64)
    return (v & ((1 << FORMAT_BITS[fmt]) - 1)).astype(np.uint64)


def decode(codes: np.ndarray, fmt: str) -> np.ndarray:
    """Stored codes -> the signed values the accelerator reads from them."""
    c = np.asarray(codes, np.int64)
    if fmt == "ternary":
        return (c & 1) * (1 - 2 * ((c >> 1) & 1))
    if fmt == "binary":
        return 2 * (c & 1) - 1
    bits = FORMAT_BITS[fmt]
    return np.where(c >= 1 << (bits - 1), c - (1 << bits), c)


def flip(values: np.ndarray, fmt: str, mask: np.ndarray) -> np.ndarray:
    """Values whose stored codes have the bits of `mask` flipped."""
    return decode(encode(values, fmt) ^ np.asarray(mask, np.uint64), fmt)


@dataclass(frozen=True)
class SiteTensor:
    """One tensor of one layer that faults may hit."""

    layer: str
    site: str  # one of SITES
    tensor: str  # weight | bias | multiplier | shift | thresholds | output | accumulator
    fmt: str  # one of FORMAT_BITS
    count: int  # values

    @property
    def bits(self) -> int:
        return self.count * FORMAT_BITS[self.fmt]


def layer_tensors(layer: Layer) -> list[SiteTensor]:
    """Everything of `layer` a fault may hit, in the formats the accelerator stores."""
    name, out = layer.name, layer.out
    found = []
    if get_kind(layer.kind).weighted:
        found.append(SiteTensor(name, "weights", "weight", _BY_BITS[layer.w_bits],
                                int(layer.weight.size)))
    if getattr(layer, "bias", None) is not None:
        found.append(SiteTensor(name, "params", "bias", "int32", len(layer.bias)))
    if out.requant is not None:
        found += [SiteTensor(name, "params", "multiplier", "int32", len(out.requant.multiplier)),
                  SiteTensor(name, "params", "shift", "shift", len(out.requant.shift))]
    if out.thresholds is not None:
        found.append(SiteTensor(name, "params", "thresholds", "int32", len(out.thresholds)))
    size = int(np.prod(layer.out_shape))
    found.append(SiteTensor(name, "activations", "output", _BY_BITS[out.bits], size))
    if get_kind(layer.kind).accumulates(layer):
        found.append(SiteTensor(name, "accumulators", "accumulator", "int32", size))
    return found


def select(layers: list[Layer], sites=SITES, names=None) -> list[SiteTensor]:
    """The tensors of the chosen sites in the chosen layers (all by default); unknown names
    are errors that list the choices."""
    bad = [s for s in sites if s not in SITES]
    if bad:
        raise CodesignError(f"unknown fault site {bad[0]!r}; sites: {', '.join(SITES)}")
    known = [layer.name for layer in layers]
    bad = [n for n in names or () if n not in known]
    if bad:
        raise CodesignError(f"no layer {bad[0]!r} in the network; its layers: {', '.join(known)}")
    return [t for layer in layers if names is None or layer.name in names
            for t in layer_tensors(layer) if t.site in sites]


@dataclass(frozen=True)
class Flips:
    """The faults of a batch of injections in one tensor: per faulty value, its injection,
    its index in the flattened tensor and the XOR mask of its stored code."""

    tensor: SiteTensor
    item: np.ndarray
    index: np.ndarray
    mask: np.ndarray  # uint64


def draw(tensors: list[SiteTensor], ber: float, batch: int,
         rng: np.random.Generator) -> dict[tuple[str, str], Flips]:
    """Independent flips of every stored bit with probability `ber`, for `batch` injections;
    keyed by (layer, tensor), tensors without a flip left out."""
    if not 0 <= ber <= 1:
        raise CodesignError(f"bit-error rate {ber!r} must be in [0, 1]")
    sizes = np.array([t.bits for t in tensors], np.int64)
    total = int(sizes.sum())
    if total == 0 or ber == 0:
        return {}
    pos = _bernoulli_positions(total * batch, ber, rng)
    item, bit = pos // total, pos % total
    ends = np.cumsum(sizes)
    which = np.searchsorted(ends, bit, side="right")
    out = {}
    for k in np.unique(which):
        t = tensors[k]
        sel = which == k
        local = bit[sel] - (ends[k] - sizes[k])
        width = FORMAT_BITS[t.fmt]
        key = item[sel] * t.count + local // width  # one entry per (injection, value)
        masks = np.left_shift(np.uint64(1), (local % width).astype(np.uint64))
        order = np.argsort(key, kind="stable")
        key, masks = key[order], masks[order]
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        out[(t.layer, t.tensor)] = Flips(t, key[first] // t.count, key[first] % t.count,
                                         np.bitwise_xor.reduceat(masks, first))
    return out


def _bernoulli_positions(total: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """The positions in [0, total) of independent Bernoulli(p) successes (geometric gaps)."""
    found, pos = [], -1
    while True:
        expect = (total - 1 - pos) * p
        gaps = rng.geometric(p, int(expect + 6 * np.sqrt(expect) + 16))
        at = pos + np.cumsum(gaps)
        found.append(at[at < total])
        if at[-1] >= total:
            return np.concatenate(found)
        pos = int(at[-1])


def faulty_layer(layer: Layer, flips: dict[str, tuple[np.ndarray, np.ndarray]]) -> Layer:
    """`layer` with the memory faults of one injection in its weights and parameters:
    tensor -> (value indices, XOR masks of their stored codes)."""
    def changed(values, tensor: str, fmt: str):
        index, mask = flips[tensor]
        new = np.array(values, np.int64).reshape(-1)
        new[index] = flip(new[index], fmt, mask)
        return new.reshape(np.shape(values)).astype(np.asarray(values).dtype)

    fields, out = {}, layer.out
    if "weight" in flips:
        fields["weight"] = changed(layer.weight, "weight", _BY_BITS[layer.w_bits])
    if "bias" in flips:
        fields["bias"] = changed(layer.bias, "bias", "int32")
    rq = out.requant
    if rq is not None and ("multiplier" in flips or "shift" in flips):
        m = changed(rq.multiplier, "multiplier", "int32") if "multiplier" in flips \
            else rq.multiplier
        s = changed(rq.shift, "shift", "shift") if "shift" in flips else rq.shift
        out = replace(out, requant=replace(rq, multiplier=m, shift=s))
    if "thresholds" in flips:
        out = replace(out, thresholds=changed(out.thresholds, "thresholds", "int32"))
    return replace(layer, **fields, out=out) if fields or out is not layer.out else layer


MEMORY_SITES = ("weights", "params", "activations")  # what the data memory holds
WORD_BITS = 32


def protect(flips: dict[tuple[str, str], Flips], protection: str, ber: float,
            rng: np.random.Generator) -> tuple[dict[tuple[str, str], Flips], np.ndarray]:
    """The flips the data memory's protection lets through, and the injections in which it
    detected an error it could not correct (re-run, so no silent change).

    Words are 32 consecutive stored bits of a tensor; a word with a flipped data bit also has
    each of its check bits (hw.config.PROTECTION) flipped with probability `ber`. SECDED
    corrects one flip and detects two (three or more pass, possibly miscorrected: kept);
    parity detects an odd count and misses an even one. Accumulators are registers: not
    protected. Flips of check bits alone change no data and are left out."""
    from hw.config import PROTECTION

    if protection not in PROTECTION:
        raise CodesignError(f"unknown memory protection {protection!r}; allowed: "
                            f"{', '.join(PROTECTION)}")
    check = PROTECTION[protection]
    if check == 0:
        return flips, np.zeros(0, np.int64)
    kept, detected = {}, []
    for key, f in flips.items():
        if f.tensor.site not in MEMORY_SITES:
            kept[key] = f
            continue
        width = FORMAT_BITS[f.tensor.fmt]
        bits = np.arange(width, dtype=np.uint64)
        hit = (f.mask[:, None] >> bits[None]) & np.uint64(1) == 1  # [values, width]
        row, bit = np.nonzero(hit)
        word = (f.index[row] * width + bit) // WORD_BITS
        key_iw = f.item[row] * (f.tensor.count * width // WORD_BITS + 1) + word
        words, inverse, count = np.unique(key_iw, return_inverse=True, return_counts=True)
        total = count + rng.binomial(check, ber, len(words))
        if protection == "secded":
            silent, caught = total >= 3, total == 2
        else:  # parity
            silent, caught = total % 2 == 0, total % 2 == 1
        detected.append(f.item[row][caught[inverse]])
        keep = silent[inverse]
        if not keep.any():
            continue
        masks = np.zeros(len(f.mask), np.uint64)
        np.bitwise_or.at(masks, row[keep], np.left_shift(np.uint64(1),
                                                          bit[keep].astype(np.uint64)))
        live = masks != 0
        kept[key] = Flips(f.tensor, f.item[live], f.index[live], masks[live])
    return kept, np.unique(np.concatenate(detected)) if detected else np.zeros(0, np.int64)
