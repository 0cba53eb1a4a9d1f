"""The hardware-aware sampler (`sampler: ehvi`): its hypervolume arithmetic, the ordinal
encoding its models read, and a search where every proposal after the random start comes with
exact hardware objectives that training then does not change."""

from __future__ import annotations

import numpy as np
import pytest
from optuna._hypervolume import compute_hypervolume

from codesign.data import load_digits
from codesign.ehvi import STARTUP, HardwareAwareSampler, _improvement
from codesign.front import distinct_completed
from codesign.models import BlockSpec, Candidate
from codesign.search import run_search
from codesign.space import load_space
from tests.codesign.test_search_durability import keys, quick


def test_improvement_is_the_hypervolume_a_point_adds():
    rng = np.random.default_rng(0)
    ref = np.full(3, 1.1)
    for _ in range(50):
        front = rng.random((rng.integers(0, 8), 3))
        point = rng.random(3) * 1.2  # sometimes past the reference point: adds nothing
        before = compute_hypervolume(front, ref) if len(front) else 0.0
        after = compute_hypervolume(np.vstack([front, point]), ref) \
            if np.all(point < ref) else before
        assert _improvement(front, point, ref) == pytest.approx(after - before, abs=1e-12)


def test_the_ordinal_encoding_orders_widths_and_bits_at_one_length():
    space = load_space("fashion")
    def cand(width=16, bits=(8, 8), depth=3):
        blocks = [BlockSpec(16, 2), BlockSpec(width, 2, bits=bits), BlockSpec(8)][:depth]
        return Candidate(tuple(blocks))
    base = space.encode(cand(), {})
    assert len(space.encode(cand(depth=2), {})) == len(base)  # past the depth: zeros
    diff = np.array(space.encode(cand(width=32), {})) - base
    assert np.count_nonzero(diff) == 1 and diff.sum() == 1.0  # log2: one step per doubling
    wider_bits = np.array(base) - space.encode(cand(bits=(2, 2)), {})
    assert np.count_nonzero(wider_bits) == 2 and np.all(wider_bits >= 0)


@pytest.mark.slow  # ~30 s: 7 tiny candidates trained on digits
def test_proposals_come_with_exact_hardware_and_are_never_repeats(tmp_path):
    exp = quick(STARTUP + 3, sampler="ehvi")
    study = run_search(exp, load_digits(), tmp_path, progress=lambda m: None)
    sampler = study.sampler
    assert isinstance(sampler, HardwareAwareSampler)
    done = distinct_completed(study)
    assert len(done) == STARTUP + 3 and len(set(keys(study))) == len(done)
    proposed = [t for t in done if t.user_attrs["key"] in sampler._exact]
    assert len(proposed) >= 3 and sampler.proposal_seconds > 0
    for t in proposed:  # known before training, as measured after it
        hw = sampler._exact[t.user_attrs["key"]][1]
        assert hw["energy_j"] == pytest.approx(t.user_attrs["metrics"]["energy_j"], rel=1e-12)
        assert hw["size_bits"] == t.user_attrs["metrics"]["size_bits"]
