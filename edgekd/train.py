"""Trainer: the student learns to output the reduced teacher embedding of each window.

Checkpoints atomically after every epoch; a resumed run continues to the same final weights as an uninterrupted
one on the CPU, because each epoch's shuffle is drawn from (seed, epoch) and the learning rate is a function of the
global step — no state lives outside the checkpoint.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from edgekd.config import TrainConfig
from edgekd.errors import EdgekdError


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float
    val_cosine: float
    lr: float
    seconds: float


def select_device(preference: str) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise EdgekdError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def _learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    warmup = config.warmup_epochs * steps_per_epoch
    total = config.epochs * steps_per_epoch
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def predict(model: nn.Module, audio: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    model.eval()
    return torch.cat([model(audio[i : i + batch_size]) for i in range(0, len(audio), batch_size)])


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(nn.functional.cosine_similarity(a, b, dim=1).mean())


def train_student(
    student: nn.Module,
    audio: np.ndarray,
    targets: np.ndarray,
    train_index: np.ndarray,
    val_index: np.ndarray,
    config: TrainConfig,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    seed: int,
    checkpoint: Path,
    resume: bool = False,
    on_step: Callable[[int, int, int], None] | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> list[EpochLog]:
    """Train in place; on return the student holds the weights with the best validation cosine."""
    device = select_device(config.device)
    student.to(device)
    x = torch.from_numpy(audio).to(device)
    y = torch.from_numpy(targets).to(device)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: list[EpochLog] = []
    best = {"val_cosine": -math.inf, "state": None}
    start_epoch = 0
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        student.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = [EpochLog(**row) for row in state["history"]]
        best = state["best"]
        start_epoch = state["epoch"]
    steps_per_epoch = math.ceil(len(train_index) / config.batch_size)
    for epoch in range(start_epoch, config.epochs):
        began = time.perf_counter()
        student.train()
        order = np.random.default_rng([seed, epoch]).permutation(train_index)
        total, count = 0.0, 0
        for step in range(steps_per_epoch):
            batch = torch.from_numpy(order[step * config.batch_size : (step + 1) * config.batch_size]).to(device)
            lr = _learning_rate(config, epoch * steps_per_epoch + step, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_fn(student(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            count += len(batch)
            if on_step:
                on_step(epoch, step + 1, steps_per_epoch)
        val_pred = predict(student, x[val_index])
        log = EpochLog(epoch + 1, total / count, float(loss_fn(val_pred, y[val_index])),
                       _cosine(val_pred, y[val_index]), lr, time.perf_counter() - began)
        history.append(log)
        if log.val_cosine > best["val_cosine"]:
            best = {"val_cosine": log.val_cosine,
                    "state": {k: v.detach().clone() for k, v in student.state_dict().items()}}
        _atomic_torch_save(
            {"epoch": epoch + 1, "model": student.state_dict(), "optimizer": optimizer.state_dict(),
             "history": [asdict(h) for h in history], "best": best},
            checkpoint,
        )
        if on_epoch:
            on_epoch(log)
    if best["state"] is not None:
        student.load_state_dict(best["state"])
    return history
