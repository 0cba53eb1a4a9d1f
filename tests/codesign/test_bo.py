"""The BoTorch proposal: within the bounds, with objectives of any scale and with constraints."""

import torch

from codesign.bo import qlognehvi_candidates


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
