"""A resilience predictor from the topology and bit widths alone (no values, no injection):
the classification change rate (CCR) a network is expected to show at a bit-error rate.

Reasoning. A flipped bit changes one stored value by its bit's weight; what matters is the
error energy it puts into the layer's output (in units of the output's own variance) and how
much of the output it reaches. For every fault site t of every layer
(`codesign.faults.layer_tensors`) and every bit k of its stored format:

    energy e(t, k): the squared change of an affected output value over its variance,
        (delta_k / sigma)^2, capped where the output saturates, with the formats' own rules:
        below the sign bit, a flip moves an int32 value further from zero in two's complement,
        so a binary output changes only by the sign bit, and after a ReLU (or in the logits the
        host reads) about half of the flips change nothing; a shift bit scales a channel by a
        power of two, to saturation or to zero;
    reach f(t): the share of the layer's output values it affects: one channel (1 / O) for a
        weight, bias, multiplier, shift or threshold, one value (1 / N) for an activation or
        an accumulator;

and the flip changes the decision with probability p = min(1, f * e / THETA): in proportion to
the error energy it adds to the layer, one layer-wide error of THETA (two standard deviations)
changing any decision. Energy rather than amplitude: in fault injection one saturated channel
of 16 changes decisions about forty times as often as one saturated value of 3,136 (reach
ratio 196; amplitude, sqrt f, would give 14), and energy ranks networks better (Spearman 0.77
against 0.64 for f^0.75 and 0.52 for f^0.6, 35 Fashion-MNIST networks, BER 1e-4). Typical
magnitudes: int8 weights sigma = 127 / 3 (per-channel scales put the largest weight near three
standard deviations), int8 activations 127 / 4 (127 / 8 after a ReLU), ternary values
sqrt(1/2), binary 1; an accumulator of K terms sqrt(K) sigma_w sigma_x. With every bit flipping
independently at the BER, the decisive flips are Poisson with mean
    lambda = BER * sum_t count(t) * sum_k p(t, k),    CCR = 1 - exp(-lambda).

The constants are the formats' own (ranges, bit weights), not fitted; the bench checks the
ranking against fault injection (`bench/resilience_bench.py`, Spearman rho).
"""

from __future__ import annotations

import math

import numpy as np

from codesign.faults import FORMAT_BITS, MEMORY_SITES, SITES, WORD_BITS, layer_tensors
from compiler.layer_ir import Add, Conv2d, Dense, Layer, Pool
from hw.config import PROTECTION

SIGMA = {"int8": 127 / 3, "ternary": math.sqrt(0.5), "binary": 1.0}  # weights
SIGMA_ACT = {8: 127 / 4, 2: math.sqrt(0.5), 1: 1.0, 32: 127 / 4}  # activations by bits
# The largest error energy of an output value, in units of its variance: an int8 value
# saturates at (127 / sigma)^2; a ternary or binary one changes sign (4 / sigma^2); the host
# reads int32 logits, which a flip moves past any margin (as far as an int8 output can).
SATURATION = {8: 16.0, 2: 8.0, 1: 4.0, 32: 16.0}
THETA = 4.0  # a layer-wide error energy of 4 (two standard deviations) changes any decision


def predicted_ccr(layers: list[Layer], ber: float, sites=SITES,
                  protection: str = "none") -> float:
    """Expected CCR at `ber` with faults in `sites`, the data memory protected by
    `protection` (hw.config.PROTECTION): a data bit's flip then passes silently only when
    enough others of its word flip too (SECDED: two more of 38; parity: an odd number more
    of 32), so memory sites see the rate of that instead of `ber`."""
    memory = [s for s in sites if s in MEMORY_SITES]
    others = [s for s in sites if s not in MEMORY_SITES]
    rate = silent_rate(ber, protection)
    lam = rate * decisive_bits(layers, memory) + ber * decisive_bits(layers, others)
    return 1.0 - math.exp(-lam)


def silent_rate(ber: float, protection: str) -> float:
    """The rate at which a stored data bit flips without the protection noticing."""
    check = PROTECTION[protection]
    if check == 0:
        return ber
    others = WORD_BITS + check - 1
    if protection == "secded":  # two or more of the word's other bits flip as well
        return ber * (1 - (1 - ber) ** others - others * ber * (1 - ber) ** (others - 1))
    return ber * (1 - (1 - 2 * ber) ** others) / 2  # parity: an odd number of others


def decisive_bits(layers: list[Layer], sites=SITES) -> float:
    """The expected number of decision-changing flips per unit of BER: the network's
    sensitivity index (larger = less resilient)."""
    return sum(sum(layer_sensitivity(layer, sites).values()) for layer in layers)


def layer_sensitivity(layer: Layer, sites=SITES) -> dict[str, float]:
    """Per fault tensor of the layer: count * sum_k min(1, reach * energy_k / THETA)."""
    out: dict[str, float] = {}
    channels = layer.out_shape[0]
    n_out = int(np.prod(layer.out_shape))
    sigma_acc = _accumulator_sigma(layer)
    relu = layer.out.requant is not None and layer.out.requant.lo == 0
    # After a ReLU about half the int8 outputs are zero: their spread is half as large, so
    # one saturated or sign-flipped value weighs four times as much.
    cap = SATURATION[layer.out.bits] * (4 if relu and layer.out.bits == 8 else 1)
    per_channel = 1 / channels
    for t in layer_tensors(layer):
        if t.site not in sites:
            continue
        bits = FORMAT_BITS[t.fmt]
        reach = per_channel if t.count > 1 else 1.0  # parameters: one channel, or all
        if t.tensor == "weight":  # one of the fan-in terms of every value of a channel
            sigma = SIGMA[t.fmt]
            energy = [_delta(t.fmt, k) ** 2 / (_fan_in(layer) * sigma ** 2) for k in range(bits)]
            reach = per_channel
        elif t.tensor == "output" and t.fmt != "int32":  # the stored code of one value
            sigma = SIGMA_ACT[layer.out.bits] / (2 if relu and layer.out.bits == 8 else 1)
            energy = [_delta(t.fmt, k) ** 2 / sigma ** 2 for k in range(bits)]
            reach = 1 / n_out
        elif t.tensor in ("output", "accumulator"):
            energy = _accumulator_energy(layer.out.kind, sigma_acc, relu, cap, spread=False)
            reach = 1 / n_out
        elif t.tensor == "bias":  # every accumulator of a channel moves
            energy = _accumulator_energy(layer.out.kind, sigma_acc, relu, cap, spread=True)
        elif t.tensor == "thresholds":  # a larger threshold zeroes the channel (energy of its
            # nonzero values, 2), a negative one (the sign bit) sets it all to +1
            energy = [min(2.0, (2.0 ** k / sigma_acc) ** 2) for k in range(31)] + [cap]
        elif t.tensor == "multiplier":  # Q31 in [2^30, 2^31): bit 31 the sign, 30 the lead
            energy = [(2.0 ** k / 2 ** 30.5) ** 2 for k in range(30)] + [0.25, 4.0]
        else:  # shift: a bit scales the output by 2^(+-2^k): half the time to saturation
            # (where a ReLU keeps only the positive half), half the time to zero (energy 1)
            energy = [0.6] + [((cap / 2 if relu else cap) + 1) / 2] * (bits - 1)
        out[t.tensor] = t.count * sum(min(1.0, reach * e / THETA) for e in energy)
    return out


def _delta(fmt: str, k: int) -> float:
    """How far flipping bit k moves a value of the format (on average over its values)."""
    if fmt == "ternary":
        return (1.0, 2 * math.sqrt(0.5))[k]  # 0 <-> +-1; the sign of a nonzero value
    if fmt == "binary":
        return 2.0
    top = FORMAT_BITS[fmt] - 1
    return 2.0 ** k if k < top else 2.0 ** top


def _fan_in(layer: Layer) -> int:
    if isinstance(layer, Conv2d):
        return layer.weight.shape[1] * layer.kernel[0] * layer.kernel[1]
    if isinstance(layer, Dense):
        return int(np.prod(layer.in_shape))
    if isinstance(layer, Pool):
        return layer.kernel[0] * layer.kernel[1]
    return 2 if isinstance(layer, Add) else 1


def _accumulator_sigma(layer: Layer) -> float:
    """The typical magnitude of the layer's accumulators, in accumulator units."""
    if isinstance(layer, (Conv2d, Dense)):
        w = SIGMA[{8: "int8", 2: "ternary", 1: "binary"}[layer.w_bits]]
        return math.sqrt(_fan_in(layer)) * w * SIGMA_ACT[layer.a_bits]
    if isinstance(layer, Add):
        return math.hypot(layer.ka, layer.kb) * SIGMA_ACT[8]
    return math.sqrt(_fan_in(layer)) * SIGMA_ACT[8]


def _accumulator_energy(kind: str, sigma_acc: float, relu: bool, cap: float,
                       spread: bool) -> list[float]:
    """Per bit of an int32 accumulator (or of a bias, which moves a whole channel: `spread`):
    the output's error energy. Below the sign bit, a flip of a bit above the value's magnitude
    moves it further from zero in two's complement: a binary output then changes only by the
    sign bit, a ternary one when a zero crosses its threshold (about half of them), after a
    ReLU the half that goes further negative stays zero, and of the logits the host reads,
    the top one growing or a negative one falling changes nothing (about half). A bias flip
    shifts values of both signs: it changes about half the outputs of a channel."""
    size = [min(cap, (2.0 ** k / sigma_acc) ** 2) for k in range(31)]
    if kind == "binary" and not spread:
        return [0.0] * 31 + [SATURATION[1]]
    if kind in ("binary", "ternary", "int32") or relu or spread:  # int32: the host's logits
        size = [0.5 * s for s in size]
    return size + [cap]
