"""Stochastic bitwise ensembles (Efficient Stochastic Inference of Bitwise Deep Neural Networks,
arXiv 1611.06539): members sampled from one model's real-valued latent weights by stochastic
rounding, their logits summed.

Sampling, per binary or ternary layer (8-bit layers stay as they are: identical in every
member), with weights measured in units of the layer's own quantization scale s (per output
channel: mean |w| for binary, the ternary scale for ternary), x = w / s:
- binary: +1 with probability clip((x + 1) / 2, 0, 1), else -1 (x >= 1 always +1);
- ternary: to one of the two neighbouring levels of {-1, 0, +1}, the nearer the likelier
  (|x| >= 1 keeps its sign).
The member's weight is the sampled level times s, so the compiler's quantizer reads back exactly
that level at scale s. The random numbers come from `LfsrBank`: one 32-bit Galois LFSR per
lane, each number 16 fresh bits, defined bit for bit below, so member k of a seed is the same
on every machine (and in hardware that draws the same sequence).

Members run back to back on an engine; a layer whose constants and input equal ones already run
for this input is not run again (`SharedBackend`): an 8-bit first layer runs once for all
members, and the cycles it saves are reported.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

from compiler.executor import Backend
from compiler.quantspec import QuantSpec

TAPS = 0x80200003  # x^32 + x^22 + x^2 + x + 1 (maximal length), Galois form
LANES = 64  # LFSRs stepped side by side: weight i takes lane i mod LANES


def _splitmix32(x: np.ndarray) -> np.ndarray:
    """Seeds of the lanes (a bijective 32-bit mix, so distinct inputs give distinct seeds)."""
    x = (x.astype(np.uint64) + 0x9E3779B9) & 0xFFFFFFFF
    x = ((x ^ (x >> 16)) * 0x85EBCA6B) & 0xFFFFFFFF
    x = ((x ^ (x >> 13)) * 0xC2B2AE35) & 0xFFFFFFFF
    return (x ^ (x >> 16)).astype(np.uint32)


class LfsrBank:
    """LANES Galois LFSRs; state of lane j starts at splitmix32(seed * 2^16 + stream * 2^8 + j)
    (never 0: a 0 becomes 1). One step: out = state & 1; state >>= 1; if out: state ^= TAPS.
    A number is 16 steps' output bits, first step in bit 15."""

    def __init__(self, seed: int, stream: int):
        base = (seed & 0xFFFF) << 16 | (stream & 0xFF) << 8
        s = _splitmix32(np.arange(LANES, dtype=np.uint64) + base)
        self.state = np.where(s == 0, 1, s).astype(np.uint32)

    def uniform16(self, n: int) -> np.ndarray:
        """n numbers in 0..65535 (lane i mod LANES gives number i)."""
        rounds = -(-n // LANES)
        out = np.zeros((rounds, LANES), np.uint32)
        state = self.state
        for r in range(rounds):
            value = np.zeros(LANES, np.uint32)
            for _ in range(16):
                bit = state & 1
                state = (state >> 1) ^ (bit * np.uint32(TAPS))
                value = (value << 1) | bit
            out[r] = value
        self.state = state
        return out.reshape(-1)[:n]


def _probability16(p: np.ndarray) -> np.ndarray:
    """A probability as the hardware compares it: round(p * 65536), clipped to 0..65536."""
    return np.clip(np.round(np.asarray(p, np.float64) * 65536), 0, 65536).astype(np.int64)


def sample_weights(w: np.ndarray, bits: int, u: np.ndarray) -> np.ndarray:
    """One member's weights of a binary (bits 1) or ternary (bits 2) layer from latent w and
    uniform 16-bit numbers u (one per weight): levels times the layer's per-channel scale."""
    from codesign.quant import quantize_weight

    w = np.asarray(w, np.float64)
    _, scale = quantize_weight(torch.from_numpy(w), bits)
    s = scale.numpy().astype(np.float64)
    x = w / s
    u = np.asarray(u, np.int64).reshape(w.shape)
    if bits == 1:
        level = np.where(u < _probability16((x + 1) / 2), 1.0, -1.0)
    elif bits == 2:
        lo = np.clip(np.floor(x), -1, 1)  # the level below x (x clipped to [-1, 1])
        frac = np.clip(x, -1, 1) - lo
        level = np.clip(lo + (u < _probability16(frac)), -1, 1)
    else:
        raise ValueError(f"stochastic rounding of {bits}-bit weights: only 1 and 2")
    return level * s


def bitwise_layers(model: nn.Module, spec: QuantSpec) -> list[tuple[str, nn.Module, int]]:
    """(name, module, weight bits) of the binary and ternary convolutions and dense layers."""
    return [(name, m, spec.bits(name).weights) for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and spec.bits(name).weights in (1, 2)]


def sample_member(model: nn.Module, spec: QuantSpec, seed: int, member: int) -> nn.Module:
    """Member `member` of the ensemble of `seed`: a copy of the model with its bitwise layers'
    weights sampled (layer i draws from LFSR stream i of seed + member)."""
    twin = copy.deepcopy(model)
    for i, (_, m, bits) in enumerate(bitwise_layers(twin, spec)):
        w = m.weight.detach().cpu().numpy()
        u = LfsrBank(seed + member, i).uniform16(w.size)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(sample_weights(w, bits, u)).to(m.weight.dtype))
    return twin


def layer_key(layer) -> str:
    """A compiled layer's content (kind, shapes, integer constants, formats): equal keys, equal
    outputs for equal inputs."""
    h = hashlib.sha256(type(layer).__name__.encode())
    for f in fields(layer):
        if f.name == "name":
            continue
        value = getattr(layer, f.name)
        h.update(f.name.encode())
        h.update(np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray)
                 else repr(value).encode())
    return h.hexdigest()


@dataclass
class Sharing:
    """Layer outputs of the current input, shared by the members; and what sharing saved."""

    outputs: dict
    saved_cycles: int = 0
    saved_runs: int = 0


class SharedBackend(Backend):
    """A member's backend that serves a layer from `sharing` when an identical layer already
    ran on the identical input (no run, no cycles), else runs it and offers its output."""

    def __init__(self, inner: Backend, sharing: Sharing):
        self.inner, self.sharing = inner, sharing
        self.name, self.compiled = inner.name, inner.compiled
        self.keys = {n: layer_key(b.layer) for n, b in inner.compiled.layers.items()}

    def _layer(self, b, *inputs):
        key = (self.keys[b.layer.name],
               *(hashlib.sha256(np.ascontiguousarray(x, np.int64).tobytes()).digest()
                 for x in inputs))
        found = self.sharing.outputs.get(key)
        if found is not None:
            y, stats = found
            self.sharing.saved_runs += 1
            self.sharing.saved_cycles += stats.cycles if stats else 0
            return y, None
        y, stats = self.inner._layer(b, *inputs)
        self.sharing.outputs[key] = (y, stats)
        return y, stats


@dataclass(frozen=True)
class EnsembleCost:
    """Members run back to back on one input (the schedule is static: any input costs the
    same); prefix k of each list: the first k + 1 members."""

    engine: str
    cycles: list[int]  # per member, shared layers counted where they ran
    energy_j: list[float]
    saved_cycles: list[int]  # per member: cycles of its layers served by an earlier member
    bit_exact: bool  # every member's logits equal the integer reference's on that input


def member_cost(members, x: np.ndarray, engine: str = "rtl") -> EnsembleCost:
    """Run the members one after the other on input x, sharing identical layers."""
    from hw.energy import energy_of

    sharing = Sharing({})
    cycles, energy, saved, exact = [], [], [], True
    for net in members:
        with net.runner(engine) as runner, net.runner("reference") as ref:
            runner.backend = SharedBackend(runner.backend, sharing)
            before = sharing.saved_cycles
            y = runner(x)
            exact &= bool(np.array_equal(y, ref(x)))
            table, w = net.config.energy, net.config.vector_width
            cycles.append(runner.cycles)
            energy.append(sum(energy_of(r.counters, table, w).total_j
                              for r in runner.layer_runs))
            saved.append(sharing.saved_cycles - before)
    return EnsembleCost(engine, cycles, energy, saved, exact)


def member_logits(members, images: np.ndarray, progress=None) -> np.ndarray:
    """[members, images, outputs] logits with the integer semantics (the numpy reference, bit
    for bit the RTL's)."""
    from codesign.progress import bar

    out = []
    shown = bar(len(members) * len(images), "ensemble members x images")
    for k, net in enumerate(members):
        rows = []
        with net.runner("reference") as ref:
            for i in range(len(images)):
                rows.append(np.asarray(ref(images[i:i + 1]), np.float64).ravel())
                shown.update()
        out.append(np.stack(rows))
        if progress:
            progress(f"member {k + 1}/{len(members)}: accuracy on {len(images)} images done")
    shown.close()
    return np.stack(out)


def accuracy_by_size(logits: np.ndarray, labels: np.ndarray, sizes) -> dict[int, float]:
    """Top-1 accuracy of the summed logits of the first k members, for each k in sizes."""
    return {k: float(np.mean(np.argmax(logits[:k].sum(axis=0), axis=1) == labels))
            for k in sizes}


def compile_members(model: nn.Module, spec: QuantSpec, k: int, seed: int, compile_one,
                    progress=None) -> list:
    """k members sampled and compiled with `compile_one(member_model)`."""
    if not bitwise_layers(model, spec):
        raise ValueError("the model has no binary or ternary layer: every member would be "
                         "the same network")
    per_tensor = [n for n, _, _ in bitwise_layers(model, spec)
                  if spec.bits(n).scales == "per_tensor"]
    if per_tensor:
        raise ValueError(f"layer {per_tensor[0]}: stochastic members need per-channel weight "
                         f"scales")
    members = []
    for i in range(k):
        members.append(compile_one(sample_member(model, spec, seed, i)))
        if progress:
            progress(f"member {i + 1}/{k} compiled")
    return members


def shared_prefix(layers) -> list[str]:
    """The leading layers before the first binary or ternary one: deterministic in every
    member and fed the same input, so run once for the whole ensemble."""
    out = []
    for layer in layers:
        if getattr(layer, "w_bits", 8) < 8:
            break
        out.append(layer.name)
    return out


def ensemble_total(per_layer: dict[str, float], layers, k: int) -> float:
    """A per-layer figure (cycles, energy) of k members back to back, the shared prefix once."""
    shared = sum(per_layer[n] for n in shared_prefix(layers))
    return k * sum(per_layer.values()) - (k - 1) * shared


def ensemble_size_bits(model: nn.Module, spec: QuantSpec, k: int) -> int:
    """Weights of k members: the deterministic layers' once, each member's bitwise ones."""
    extra = sum(m.weight.numel() * bits for _, m, bits in bitwise_layers(model, spec))
    return model.size_bits() + (k - 1) * extra
