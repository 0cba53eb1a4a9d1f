"""Quantization-aware training of a candidate on a data set."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from codesign.data import Dataset
from codesign.models import QuantNet
from codesign.progress import bar
from codesign.quant import QConv2d, QLinear, set_quantization


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8  # quantization-aware (fine-)tuning
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    time_limit_s: float | None = None  # per model, both phases; stops after a whole batch
    pretrain_epochs: int = 0  # float training first (fake quantization off)
    two_step: bool = False  # BNN training technique (arXiv 2206.12322): the first half of the
    #                         QAFT epochs quantizes activations only, the second weights too


def train(model: QuantNet, data: Dataset, cfg: TrainConfig,
          progress: Callable[[str], None] | None = None,
          on_epoch: Callable[[str, int, float], None] | None = None) -> QuantNet:
    """Float pre-training, then quantization-aware fine-tuning. With no QAFT epochs the model
    is left for post-training quantization: the compiler calibrates its activation scales.
    `on_epoch(phase, epoch, held-out accuracy)` after every epoch may stop the training by
    raising (a search prunes a candidate that way)."""
    start = time.time()
    limit = cfg.time_limit_s or float("inf")
    # The time limit is shared in proportion to the epochs, so that a slow pre-training
    # cannot leave the quantizers untrained; each phase runs at least one batch.
    share = cfg.pretrain_epochs / max(1, cfg.pretrain_epochs + cfg.epochs)
    if cfg.pretrain_epochs:
        set_quantization(model, False)
        _run(model, data, cfg, cfg.pretrain_epochs, start + limit * share, "float", progress,
             on_epoch)
        set_quantization(model, True)
    model.ptq = cfg.epochs == 0
    first = cfg.epochs // 2 if cfg.two_step else 0
    if first:
        bitwise = [m for m in model.modules() if isinstance(m, (QConv2d, QLinear))
                   and m.w_bits < 8]
        for m in bitwise:
            m.quantize = False
        step_deadline = start + limit * (share + (1 - share) * first / cfg.epochs)
        _run(model, data, replace(cfg, seed=cfg.seed + 1), first, step_deadline,
             "QAFT activations", progress, on_epoch)
        for m in bitwise:
            m.quantize = True
    if cfg.epochs - first:
        _run(model, data, replace(cfg, seed=cfg.seed + 1 + (first > 0)), cfg.epochs - first,
             start + limit, "QAFT", progress, on_epoch)
    return model.eval()


def _run(model, data, cfg, epochs, deadline, phase, progress, on_epoch=None):
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    shown = bar(epochs * -(-len(x) // cfg.batch_size), f"{phase} training")
    for epoch in range(epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        total, seen = 0.0, 0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total, seen = total + loss.item() * len(idx), seen + len(idx)
            shown.update()
            if time.time() > deadline:
                break
        sched.step()
        acc = accuracy(model, data) if progress or on_epoch else None
        if progress:
            progress(f"{phase} epoch {epoch + 1}/{epochs}: loss {total / seen:.3f}, "
                     f"{data.held_out} accuracy {acc:.3f}")
        shown.set_postfix(loss=f"{total / seen:.3f}", epoch=epoch + 1)
        if on_epoch:
            try:
                on_epoch(phase, epoch + 1, acc)
            except BaseException:
                shown.close()
                raise
        if time.time() > deadline:
            if progress:
                progress(f"{phase}: its share of the {cfg.time_limit_s:g} s time limit is used")
            break
    shown.close()


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset) -> float:
    model.eval()
    logits = model(torch.from_numpy(data.x_test))
    return float((logits.argmax(1).numpy() == data.y_test).mean())
