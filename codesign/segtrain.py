"""Training for segmentation: per-pixel cross-entropy (ignored pixels count for nothing),
block-wise distillation with the per-channel noise-to-signal loss, and mIoU of the float model
and of the compiled network with the integer semantics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codesign.progress import bar
from codesign.quant import set_quantization
from codesign.segdata import IGNORE, SegDataset, confusion, iou_per_class


@dataclass(frozen=True)
class Schedule:
    epochs: int
    batch_size: int = 64
    lr: float = 3e-3
    images: int | None = None  # training images used (None: all)
    kd: float = 0.0  # weight of distillation from a teacher's logits (per-pixel KL), if given


def _batches(n: int, size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, size):
        yield order[i:i + size]


def train_seg(model: nn.Module, data: SegDataset, s: Schedule, quantize: bool = True,
              seed: int = 0, progress: Callable[[str], None] | None = None,
              what: str = "train", teacher: nn.Module | None = None) -> float:
    """Cross-entropy training (fake quantization on or off), plus distillation from the
    teacher's logits when given and `s.kd` > 0; returns the last epoch's loss."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    set_quantization(model, quantize)
    n = min(len(data.x_train), s.images or len(data.x_train))
    x, y = torch.from_numpy(data.x_train[:n]), torch.from_numpy(data.y_train[:n])
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    steps = max(1, s.epochs * -(-n // s.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_value = float("nan")
    for epoch in range(s.epochs):
        model.train()
        total, seen = 0.0, 0
        with bar(-(-n // s.batch_size), f"{what} epoch {epoch + 1}/{s.epochs}") as b:
            for idx in _batches(n, s.batch_size, rng):
                logits = model(x[idx])
                loss = F.cross_entropy(logits, y[idx], ignore_index=IGNORE)
                if teacher is not None and s.kd > 0:
                    with torch.no_grad():
                        target = F.softmax(teacher(x[idx]), dim=1)
                    kl = F.kl_div(F.log_softmax(logits, dim=1), target, reduction="none")
                    loss = (1 - s.kd) * loss + s.kd * kl.sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total, seen = total + loss.item() * len(idx), seen + len(idx)
                b.update()
        loss_value = total / max(1, seen)
        if progress:
            progress(f"{what}: epoch {epoch + 1}/{s.epochs} loss {loss_value:.4f}")
    set_quantization(model, True)
    model.eval()
    return loss_value


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 128) -> np.ndarray:
    model.eval()
    return np.concatenate([model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy()
                           for i in range(0, len(x), batch)])


def float_miou(model: nn.Module, data: SegDataset, images: int | None = None) -> float:
    n = min(len(data.x_test), images or len(data.x_test))
    return _miou(predict(model, data.x_test[:n]), data.y_test[:n], data.classes)


def _miou(pred, target, classes) -> float:
    return float(np.nanmean(iou_per_class(confusion(pred, target, classes))))


def int_miou(runner, data: SegDataset, images: int | None = None,
             progress: Callable[[str], None] | None = None) -> tuple[float, np.ndarray]:
    """mIoU of a compiled network's runner (integer semantics) on the first test images; and
    its predictions."""
    n = min(len(data.x_test), images or len(data.x_test))
    preds = []
    with bar(n, "integer inference") as b:
        for i in range(n):
            preds.append(np.asarray(runner(data.x_test[i:i + 1])).reshape(
                (-1, *data.y_test.shape[1:])).argmax(0))
            b.update()
    pred = np.stack(preds)
    return _miou(pred, data.y_test[:n], data.classes), pred


def nsr(pred: torch.Tensor, target: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Per-channel noise-to-signal ratio, mean over channels: ||Y_c - Y'_c||^2 / var(Y_c)
    (the squared error's mean per channel over the variance of the teacher's channel)."""
    err = ((pred - target) ** 2).mean(dim=(0, 2, 3))
    return (err / var).mean()


def channel_var(t: torch.Tensor) -> torch.Tensor:
    return t.var(dim=(0, 2, 3)).clamp(min=1e-6)


def distill_block(block: nn.Module, x_in: torch.Tensor, y_out: torch.Tensor,
                  x_val: torch.Tensor, y_val: torch.Tensor, s: Schedule, seed: int = 0,
                  deadline: float | None = None) -> float:
    """Train `block` (fake quantization on) to map the teacher's features x_in to y_out;
    returns its NSR on the held-out features."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    var = channel_var(y_out)
    opt = torch.optim.Adam(block.parameters(), lr=s.lr)
    steps = max(1, s.epochs * -(-len(x_in) // s.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(s.epochs):
        block.train()
        for idx in _batches(len(x_in), s.batch_size, rng):
            loss = nsr(block(x_in[idx]), y_out[idx], var)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if deadline is not None and time.time() > deadline:
                break
    block.eval()
    with torch.no_grad():
        return float(nsr(block(x_val), y_val, channel_var(y_val)))
