"""Quantization-aware training of a candidate on a data set."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from codesign.data import Dataset


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    time_limit_s: float | None = None  # stop early (after a whole batch) when exceeded


def train(model: nn.Module, data: Dataset, cfg: TrainConfig,
          progress: Callable[[str], None] | None = None) -> nn.Module:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cfg.epochs))
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    start = time.time()
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            if cfg.time_limit_s and time.time() - start > cfg.time_limit_s:
                break
        sched.step()
        if progress:
            progress(f"epoch {epoch + 1}/{cfg.epochs}: loss {total / len(x):.3f}, "
                     f"test accuracy (fake-quant) {accuracy(model, data):.3f}")
        if cfg.time_limit_s and time.time() - start > cfg.time_limit_s:
            break
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset) -> float:
    model.eval()
    logits = model(torch.from_numpy(data.x_test))
    return float((logits.argmax(1).numpy() == data.y_test).mean())
