"""The BoTorch proposal: within the bounds, with objectives of any scale and with constraints."""

import pytest
import torch

from codesign.bo import qlognehvi_candidates


@pytest.mark.slow
def test_a_proposal_lies_in_the_bounds_with_joule_scaled_objectives_and_a_constraint():
    torch.manual_seed(0)
    bounds = torch.tensor([[0.0, -2.0, 10.0], [1.0, 2.0, 50.0]], dtype=torch.float64)
    x = bounds[0] + (bounds[1] - bounds[0]) * torch.rand(10, 3, dtype=torch.float64)
    # accuracy, and minus an energy in joules (Optuna hands over objectives to maximize)
    obj = torch.stack([x[:, 0], -1e-8 * (1 + x[:, 2] / 50)], dim=-1)
    con = (x[:, 1] - 1.0).unsqueeze(-1)  # feasible where <= 0
    for train_con in (None, con):
        (c,) = qlognehvi_candidates(x, obj, train_con, bounds, None)
        assert c.shape == (3,)
        assert torch.all(c >= bounds[0] - 1e-9) and torch.all(c <= bounds[1] + 1e-9)
    # a constant objective does not divide by zero
    flat = torch.stack([x[:, 0], torch.full((10,), 5e-8, dtype=torch.float64)], dim=-1)
    assert torch.isfinite(qlognehvi_candidates(x, flat, None, bounds, None)).all()


def test_the_proposal_does_not_depend_on_the_objectives_units_and_improves_the_front():
    """Energies in joules, in nJ-like units and in kJ-like units give the same proposal (the
    objectives are scaled before the GP), and it lies where both objectives improve: accuracy
    peaks at x0 = 1, x1 = 0; energy falls with x0 and x2, so the front's open corner is x2 = 10."""
    torch.manual_seed(0)
    bounds = torch.tensor([[0.0, -2.0, 10.0], [1.0, 2.0, 50.0]], dtype=torch.float64)
    x = bounds[0] + (bounds[1] - bounds[0]) * torch.rand(10, 3, dtype=torch.float64)
    accuracy = x[:, 0] * (1 - 0.3 * x[:, 1] ** 2 / 4)
    energy = 1 + x[:, 2] / 50 + x[:, 0]
    proposals = []
    for unit in (1e-8, 1.0, 1e3):
        torch.manual_seed(1)
        (c,) = qlognehvi_candidates(x, torch.stack([accuracy, -unit * energy], dim=-1), None,
                                    bounds, None)
        proposals.append(c)
    for c in proposals[1:]:
        assert torch.allclose(c, proposals[0], atol=1e-4)
    c = proposals[0]
    assert c[0] > 0.9 and abs(c[1]) < 0.5 and c[2] < 12.0
