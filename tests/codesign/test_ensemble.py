"""Stochastic bitwise ensembles: the LFSR bank is defined bit for bit, members are sampled by
stochastic rounding that the compiler's quantizer reads back exactly, and members run back to
back on the RTL with identical layers run once."""

import numpy as np
import pytest
import torch

from codesign.ensemble import (LfsrBank, accuracy_by_size, compile_members, member_cost,
                               member_logits, sample_member, sample_weights)
from codesign.evaluate import CALIBRATION_IMAGES, compile_quantnet
from codesign.models import BlockSpec, Candidate, build_model
from codesign.quant import quantize_weight
from codesign.train import TrainConfig, train
from hw.config import load_accel_config


def test_the_lfsr_bank_is_defined_bit_for_bit():
    a, b = LfsrBank(7, 3).uniform16(1000), LfsrBank(7, 3).uniform16(1000)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, LfsrBank(8, 3).uniform16(1000))
    assert not np.array_equal(a, LfsrBank(7, 4).uniform16(1000))
    # The first number of lane 0, by hand: 16 Galois steps from splitmix32(7 << 16 | 3 << 8).
    x = (7 << 16 | 3 << 8) + 0x9E3779B9
    x = ((x ^ (x >> 16)) * 0x85EBCA6B) & 0xFFFFFFFF
    x = ((x ^ (x >> 13)) * 0xC2B2AE35) & 0xFFFFFFFF
    state, value = x ^ (x >> 16), 0
    for _ in range(16):
        bit = state & 1
        state = (state >> 1) ^ (0x80200003 if bit else 0)
        value = value << 1 | bit
    assert a[0] == value
    u = LfsrBank(1, 0).uniform16(64 * 1024)
    assert abs(u.mean() / 65535 - 0.5) < 0.01 and 0.24 < (u < 16384).mean() < 0.26


@pytest.mark.parametrize("bits", [1, 2])
def test_stochastic_rounding_is_read_back_exactly_and_unbiased(bits):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)) * 0.1
    levels, scale = (t.numpy() for t in quantize_weight(torch.from_numpy(w), bits))
    draws = [sample_weights(w, bits, LfsrBank(s, 0).uniform16(w.size)) for s in range(400)]
    for d in draws[:5]:
        q, s = (t.numpy() for t in quantize_weight(torch.from_numpy(d), bits))
        np.testing.assert_allclose(q * s, d)  # the compiler reads the sampled levels back
        np.testing.assert_allclose(s, scale)
    mean = np.mean(draws, axis=0) / scale
    x = np.clip(w / scale, -1, 1)  # stochastic rounding keeps the expectation (within [-1, 1])
    assert np.abs(mean - x).max() < 0.2 and np.abs(mean - x).mean() < 0.05
    assert not np.array_equal(draws[0], draws[1])


@pytest.fixture(scope="module")
def binary_net():
    from codesign.data import load_digits
    data = load_digits()
    cand = Candidate((BlockSpec(8, 1, 3, bits=(8, 8)), BlockSpec(16, 2, 3, bits=(1, 1))),
                     "flatten", (1, 1))
    model = train(build_model(cand, data.input_shape, 10), data,
                  TrainConfig(epochs=3, pretrain_epochs=2))
    return model, data


@pytest.mark.rtl
def test_members_differ_share_the_first_layer_and_are_bit_exact(binary_net):
    model, data = binary_net
    config = load_accel_config("default")
    spec = model.quant_spec()
    members = compile_members(model, spec, 3, 0, lambda m: compile_quantnet(
        m, config, data.x_train[:CALIBRATION_IMAGES]))
    first = [m.layers[0] for m in members]
    np.testing.assert_array_equal(first[0].weight, first[1].weight)  # 8-bit: identical
    assert not np.array_equal(members[0].layers[1].weight, members[1].layers[1].weight)
    cost = member_cost(members, data.x_test[:1], "rtl")
    assert cost.bit_exact and cost.saved_cycles[0] == 0
    first_cycles = members[0].program.layers[first[0].name].cycles
    assert cost.saved_cycles[1] == cost.saved_cycles[2] == first_cycles
    assert cost.cycles[1] + cost.saved_cycles[1] == cost.cycles[0]  # same schedule otherwise
    logits = member_logits(members, data.x_test[:60])
    acc = accuracy_by_size(logits, data.y_test[:60], (1, 3))
    assert 0 <= acc[1] <= 1 and 0 <= acc[3] <= 1
    with pytest.raises(ValueError, match="no binary or ternary layer"):
        compile_members(sample_member(model, spec, 0, 0), type(spec)(), 2, 0, None)


@pytest.mark.rtl
def test_ensemble_size_is_a_candidate_option_priced_by_every_evaluator(binary_net):
    """An ensemble candidate: the estimate prices it as the RTL measures it (members back to
    back, the 8-bit first layer once), accuracy from the summed logits; its size counts each
    member's bitwise weights."""
    from dataclasses import replace

    from codesign.evaluate import get_evaluator
    from codesign.space import parse_space

    model, data = binary_net
    one = get_evaluator("estimate", load_accel_config("default"), 30).evaluate(model, data)
    model.candidate = replace(model.candidate, ensemble=3)
    try:
        est = get_evaluator("estimate", load_accel_config("default"), 30).evaluate(model, data)
        rtl = get_evaluator("rtl", load_accel_config("default"), 30).evaluate(model, data)
    finally:
        model.candidate = replace(model.candidate, ensemble=1)
    assert (est.cycles, est.accuracy, est.size_bits) == (rtl.cycles, rtl.accuracy, rtl.size_bits)
    assert [x.name for x in est.layers] == [x.name for x in rtl.layers]
    first = one.layers[0].cycles
    assert est.cycles == 3 * one.cycles - 2 * first  # the shared first layer once
    assert est.layers[0].name == "m0:blocks.0.conv" and "m1:blocks.0.conv" not in \
        [x.name for x in est.layers]
    binary_bits = model.blocks[1].conv.weight.numel() + model.fc.weight.numel()  # 1-bit
    assert est.size_bits == one.size_bits + 2 * binary_bits
    space = parse_space({"depth": [2], "width": [4], "bits": [[8, 8]], "ensemble": [1, 4]},
                        "s")
    assert space.parameters()["ensemble"] == [1, 4]
    import optuna
    cand, _ = space.suggest(optuna.trial.FixedTrial({"ensemble": 4}))
    assert cand.ensemble == 1  # all 8-bit: no members to sample
