"""Trainer: the student learns to output the reduced teacher embedding of each window (and, with the recipe's
methods, whatever else its DistillationModel asks: labels, soft targets, a peer, a memory bank).

Checkpoints atomically after every epoch; a resumed run continues to the same final weights as an uninterrupted
one on the CPU, because each epoch's shuffle is drawn from (seed, epoch) and the learning rate is a function of the
global step — no state lives outside the checkpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from edgekd.config import TrainConfig
from edgekd.errors import EdgekdError
from edgekd.files import atomic_write


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float
    val_cosine: float | None  # None without a teacher (teacher-free runs)
    lr: float
    seconds: float
    val_accuracy: float | None = None  # of the classification head, when the recipe adds one

    def score(self) -> float:
        """What picks the best epoch: fidelity to the teacher, or head accuracy when there is no teacher."""
        return self.val_cosine if self.val_cosine is not None else self.val_accuracy


def select_device(preference: str) -> torch.device:
    """The recipe's device choice, checked against what this machine has."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise EdgekdError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def _learning_rate(config: TrainConfig, step: int, steps_per_epoch: int, plateau_lr: float) -> float:
    warmup = config.warmup_epochs * steps_per_epoch
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "plateau":
        return plateau_lr
    total = config.epochs * steps_per_epoch
    progress = (step - warmup) / max(1, total - warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _ema_update(ema: dict[str, torch.Tensor], model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                ema[key].mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                ema[key].copy_(value)


@torch.no_grad()
def predict(model: nn.Module, audio: torch.Tensor, batch_size: int = 64):
    """The model's outputs for every row, batch by batch: a tensor, or a dict of tensors for a DistillationModel."""
    model.eval()
    outputs = [model(audio[i : i + batch_size]) for i in range(0, len(audio), batch_size)]
    if isinstance(outputs[0], dict):
        return {key: _concatenate([o[key] for o in outputs]) for key in outputs[0]}
    return torch.cat(outputs)


def _concatenate(parts: list):
    if isinstance(parts[0], list):  # attention maps: one tensor per layer
        return [torch.cat(layer) for layer in zip(*parts)]
    return torch.cat(parts)


def train_student(
    model: nn.Module,
    audio: np.ndarray,
    rows: dict[str, np.ndarray],
    train_index: np.ndarray,
    val_index: np.ndarray,
    config: TrainConfig,
    seed: int,
    checkpoint: Path,
    resume: bool = False,
    on_step: Callable[[int, int, int], None] | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> list[EpochLog]:
    """Train a DistillationModel in place on `rows` (per-window arrays: `target` embeddings, `label`, `soft` targets,
    `trust`); on return it holds the weights (their EMA, when enabled) with the best validation score. With
    `schedule: plateau` and `optimizer: adam` this is SEA's recipe: the rate drops ×plateau_factor when the
    validation loss has not improved for plateau_patience epochs, and `early_stopping` ends the run."""
    from edgekd.distributed import barrier, local_device, rank_and_world

    rank, world = rank_and_world()
    device = local_device(config.device)
    model.to(device)
    if device.type == "cuda":  # cuDNN's fastest convolutions take NHWC weights
        model.to(memory_format=torch.channels_last)
    # Under torchrun each process takes its share of every batch; DistributedDataParallel averages the gradients,
    # so the global batch (and the learning-rate schedule) is the same as in one process.
    _set_autocast(model, torch.bfloat16 if device.type == "cuda" and config.amp else None)
    synced = _sync_batch_norms(model) if world > 1 else []
    # Each process keeps its own memory bank; buffers are not broadcast (global BatchNorm keeps statistics equal).
    wrapped = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False) if world > 1 else model
    x = torch.from_numpy(audio)  # stays in host memory; batches go to the device
    y = {key: torch.from_numpy(value) for key, value in rows.items()}
    workers = 2 if device.type == "cuda" else 0
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer_class(trainable, lr=config.lr, weight_decay=config.weight_decay)
    history: list[EpochLog] = []
    best = {"score": -math.inf, "state": None}
    # Validation-driven state (plateau schedule, early stopping) lives in the checkpoint so resume is exact.
    plateau = {"lr": config.lr, "best_loss": math.inf, "stalled": 0, "since_best": 0}
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()} if config.ema else None
    start_epoch = 0
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = [EpochLog(**row) for row in state["history"]]
        best, plateau, start_epoch = state["best"], state["plateau"], state["epoch"]
        ema = state["ema"]
    micro_batches = math.ceil(len(train_index) / config.batch_size)
    steps_per_epoch = math.ceil(micro_batches / config.accumulate)
    for epoch in range(start_epoch, config.epochs):
        if config.early_stopping and plateau["since_best"] >= config.early_stopping:
            break
        began = time.perf_counter()
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(train_index)
        total, count = 0.0, 0
        shares = []
        for micro in range(micro_batches):
            batch = order[micro * config.batch_size : (micro + 1) * config.batch_size]
            shares.append(batch[rank::world] if len(batch) >= world else batch)
        for micro, (inputs, wanted) in enumerate(batches(x, y, shares, device, workers)):
            loss = model.loss(wrapped(inputs), wanted, epoch)
            (loss / config.accumulate).backward()
            total += loss.item() * len(inputs)
            count += len(inputs)
            if (micro + 1) % config.accumulate == 0 or micro + 1 == micro_batches:
                step = micro // config.accumulate
                lr = _learning_rate(config, epoch * steps_per_epoch + step, steps_per_epoch, plateau["lr"])
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    _ema_update(ema, model, config.ema)
                if on_step:
                    on_step(epoch, step + 1, steps_per_epoch)
        if ema is not None:  # validate the averaged weights, the ones that will be kept
            live = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(ema)
        val_x, val_y = next(batches(x, y, [val_index], device, 0))
        val_loss, val_cosine, val_accuracy = model.validation(predict(model, val_x), val_y)
        log = EpochLog(epoch + 1, total / count, val_loss, val_cosine, lr, time.perf_counter() - began, val_accuracy)
        history.append(log)
        if log.score() > best["score"]:
            best = {"score": log.score(),
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if ema is not None:
            model.load_state_dict(live)
        _update_plateau(plateau, log.val_loss, config)
        if rank == 0:
            atomic_write(checkpoint, lambda handle: torch.save(
                {"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "history": [asdict(h) for h in history], "best": best, "plateau": plateau, "ema": ema}, handle))
        barrier()
        if on_epoch:
            on_epoch(log)
    for norm in synced:
        norm.__class__ = nn.BatchNorm2d
    _set_autocast(model, None)
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    return history


def _set_autocast(model: nn.Module, dtype: torch.dtype | None) -> None:
    """bf16 for the bodies of every audio network being trained (student and peer); their front-ends stay FP32."""
    for module in model.modules():
        if hasattr(module, "autocast"):
            module.autocast = dtype


class _GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics cover the global batch across torchrun processes, on any device
    (torch's SyncBatchNorm is GPU-only): sums are all-reduced with autograd, so gradients match one process."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = (0, 2, 3)
        count = all_reduce(torch.tensor([float(x.numel() // x.shape[1])], device=x.device))
        mean = all_reduce(x.sum(dims)) / count
        var = all_reduce(((x - mean[None, :, None, None]) ** 2).sum(dims)) / count
        with torch.no_grad():
            momentum = self.momentum if self.momentum is not None else 0.1
            self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            self.running_var.mul_(1 - momentum).add_(var * count / (count - 1).clamp(min=1), alpha=momentum)
            self.num_batches_tracked.add_(1)
        normalised = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        return normalised * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def _sync_batch_norms(model: nn.Module) -> list[nn.Module]:
    """Switch every BatchNorm2d to global statistics for the run (same parameters and buffers, so checkpoints and
    exports are unchanged); returns them so the switch can be undone."""
    norms = [m for m in model.modules() if type(m) is nn.BatchNorm2d]
    for norm in norms:
        norm.__class__ = _GlobalBatchNorm2d
    return norms


class _Rows(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: dict[str, torch.Tensor]):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.x[index], {key: value[index] for key, value in self.y.items()}


def batches(x: torch.Tensor, y: dict[str, torch.Tensor], index_batches: list[np.ndarray], device: torch.device,
            workers: int):
    """(inputs, {name: rows}) on `device` for each list of row indices, in the given order. With workers (on CUDA),
    a DataLoader gathers the next batches into pinned memory while the GPU trains; copies run without blocking."""
    if workers == 0:
        for index in index_batches:
            rows = torch.from_numpy(np.asarray(index))
            yield x[rows].to(device), {key: value[rows].to(device) for key, value in y.items()}
        return
    loader = torch.utils.data.DataLoader(_Rows(x, y), batch_sampler=[list(map(int, b)) for b in index_batches],
                                         num_workers=workers, pin_memory=device.type == "cuda")
    for inputs, targets in loader:
        yield (inputs.to(device, non_blocking=True),
               {key: value.to(device, non_blocking=True) for key, value in targets.items()})


def _update_plateau(plateau: dict, val_loss: float, config: TrainConfig) -> None:
    if val_loss < plateau["best_loss"] - 1e-12:
        plateau.update(best_loss=val_loss, stalled=0, since_best=0)
        return
    plateau["stalled"] += 1
    plateau["since_best"] += 1
    if plateau["stalled"] >= config.plateau_patience:
        plateau["lr"] *= config.plateau_factor
        plateau["stalled"] = 0
