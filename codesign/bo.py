"""BoTorch's qLogNEHVI as the `candidates_func` of Optuna's BoTorchSampler, sized for a laptop.

Optuna's integration optimizes the acquisition from 20 restarts over 1,024 raw samples (about
100 s a proposal on 2 cores for a search of 8 trials) and puts the reference point 1e-8 below
the worst value of each objective, which for energies in joules (a few 1e-8 apart) lies far off
the front. Here the objectives are scaled to [0, 1] first, so the reference point sits just
below the worst value seen, and the acquisition is optimized from 4 restarts over 256 raw
samples with 128 quasi-Monte-Carlo samples of the posterior (the integration: 256): a codesign
search space is a few categorical choices, relaxed to the unit cube.
"""

from __future__ import annotations

import torch

RESTARTS = 4
RAW_SAMPLES = 256
MC_SAMPLES = 128


def qlognehvi_candidates(train_x: torch.Tensor, train_obj: torch.Tensor,
                         train_con: torch.Tensor | None, bounds: torch.Tensor,
                         pending_x: torch.Tensor | None) -> torch.Tensor:
    """One proposal (Optuna maximizes: objectives arrive already signed to be maximized);
    constraints are outcomes <= 0 when feasible, modelled with the objectives."""
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement)
    from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.optim import optimize_acqf
    from botorch.sampling import SobolQMCNormalSampler
    from botorch.utils.transforms import normalize, unnormalize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    lo, hi = train_obj.min(dim=0).values, train_obj.max(dim=0).values
    obj = (train_obj - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    n_obj = obj.shape[-1]
    extra = {}
    train_y = obj
    if train_con is not None:
        n_con = train_con.shape[-1]
        train_y = torch.cat([obj, train_con], dim=-1)
        extra = {"objective": IdentityMCMultiOutputObjective(outcomes=list(range(n_obj))),
                 "constraints": [lambda z, i=i: z[..., n_obj + i] for i in range(n_con)]}
    x = normalize(train_x, bounds=bounds)
    model = SingleTaskGP(x, train_y, outcome_transform=Standardize(m=train_y.shape[-1]))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    acqf = qLogNoisyExpectedHypervolumeImprovement(
        model=model, ref_point=[-1e-3] * n_obj, X_baseline=x, prune_baseline=True,
        sampler=SobolQMCNormalSampler(sample_shape=torch.Size([MC_SAMPLES])),
        X_pending=None if pending_x is None else normalize(pending_x, bounds=bounds), **extra)
    unit = torch.stack([torch.zeros(x.shape[-1]), torch.ones(x.shape[-1])]).to(x)
    candidates, _ = optimize_acqf(acq_function=acqf, bounds=unit, q=1, num_restarts=RESTARTS,
                                  raw_samples=RAW_SAMPLES,
                                  options={"batch_limit": 4, "maxiter": 100})
    return unnormalize(candidates.detach(), bounds=bounds)
