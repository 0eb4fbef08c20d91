"""Trainer: the student learns to output the reduced teacher embedding of each window (and, with the recipe's
methods, whatever else its DistillationModel asks: labels, soft targets, a peer, a memory bank).

Checkpoints atomically after every epoch; a resumed run continues to the same final weights as an uninterrupted
one on the CPU, because each epoch's shuffle is drawn from (seed, epoch) and the learning rate is a function of the
global step — no state lives outside the checkpoint (`TrainState`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from edgekd.configs import TrainConfig
from edgekd.data.windows import WindowAudio
from edgekd.files import atomic_write, load_weights
from edgekd.runtime import barrier, rank_and_world, select_device, share

Audio = WindowAudio | np.ndarray  # windows by row: read from the audio store, or already in memory (tests)


class TrainingStopped(Exception):
    """Training stopped from outside at the end of an epoch (a search's pruner), on every rank: the run keeps its
    checkpoint, and is not finished."""


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


@dataclass
class Plateau:
    """Validation-driven schedule state (SEA's plateau rate drops, early stopping)."""

    lr: float
    best_loss: float = math.inf
    stalled: int = 0
    since_best: int = 0

    def update(self, val_loss: float, config: TrainConfig) -> None:
        if val_loss < self.best_loss - 1e-12:
            self.best_loss, self.stalled, self.since_best = val_loss, 0, 0
            return
        self.stalled += 1
        self.since_best += 1
        if self.stalled >= config.plateau_patience:
            self.lr *= config.plateau_factor
            self.stalled = 0


@dataclass
class TrainState:
    """Everything a resumed run needs, saved in the checkpoint after every epoch."""

    epoch: int
    plateau: Plateau
    history: list[EpochLog] = field(default_factory=list)
    best_score: float = -math.inf
    best_weights: dict[str, torch.Tensor] | None = None
    ema: dict[str, torch.Tensor] | None = None

    def to_checkpoint(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        return {"epoch": self.epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "history": [asdict(h) for h in self.history], "plateau": asdict(self.plateau),
                "best": {"score": self.best_score, "state": self.best_weights}, "ema": self.ema}

    @classmethod
    def from_checkpoint(cls, state: dict, model: nn.Module, optimizer: torch.optim.Optimizer) -> TrainState:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return cls(state["epoch"], Plateau(**state["plateau"]), [EpochLog(**row) for row in state["history"]],
                   state["best"]["score"], state["best"]["state"], state["ema"])


def _copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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
def predict(model: nn.Module, audio: Audio, rows: np.ndarray | None = None, batch_size: int = 64) -> torch.Tensor:
    """A network's output for each of `rows` (every row when None), reading `audio[rows]` batch by batch: a
    WindowAudio streams the windows from the audio store, so only one batch of audio is in memory."""
    model.eval()
    rows = np.arange(len(audio)) if rows is None else rows
    parts = ({"out": model(torch.as_tensor(audio[rows[i : i + batch_size]]))} for i in range(0, len(rows), batch_size))
    return _gathered(parts, len(rows))["out"]


def _gathered(parts: Iterable[dict[str, torch.Tensor]], total: int) -> dict[str, torch.Tensor]:
    """Each batch's outputs copied into tensors sized for all `total` rows, allocated at the first batch. Keeping
    every batch's small output instead leaves it between the next batches' large transient buffers, and the freed
    heap around them cannot be returned: the process then grows with the number of windows (+50 MB at 16 h)."""
    gathered: dict[str, torch.Tensor] = {}
    done = 0
    for part in parts:
        if not gathered:
            gathered = {key: torch.empty((total, *value.shape[1:]), dtype=value.dtype, device=value.device)
                        for key, value in part.items()}
        count = len(next(iter(part.values())))
        for key, value in part.items():
            gathered[key][done : done + count] = value
        done += count
    return gathered


@dataclass
class _Loop:
    """One training run's fixed parts: the model as wrapped for torchrun, its data and its optimiser."""

    model: nn.Module
    wrapped: nn.Module
    x: Audio
    y: dict[str, torch.Tensor]
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    device: torch.device
    rank: int
    world: int

    @property
    def workers(self) -> int:
        return 2 if self.device.type == "cuda" else 0


def train_student(
    model: nn.Module,
    audio: Audio,
    rows: dict[str, np.ndarray],
    train_index: np.ndarray,
    val_index: np.ndarray,
    config: TrainConfig,
    seed: int,
    checkpoint: Path,
    resume: bool = False,
    on_step: Callable[[int, int, int], None] | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
    should_stop: Callable[[EpochLog], bool] | None = None,
) -> list[EpochLog]:
    """Train a DistillationModel in place on the windows of `audio` (read per batch) and `rows` (per-window arrays:
    `target` embeddings, `label`, `soft` targets, `trust`); on return it holds the weights (their EMA, when enabled)
    with the best validation score. With `schedule: plateau` and `optimizer: adam` this is SEA's recipe: the rate
    drops ×plateau_factor when the validation loss has not improved for plateau_patience epochs, and
    `early_stopping` ends the run. `should_stop`, asked on rank 0 after each epoch (every rank must pass one), raises
    TrainingStopped on every rank when it says so."""
    loop = _prepare(model, audio, rows, config)
    state = TrainState(0, Plateau(config.lr), ema=_copy(model) if config.ema else None)
    if resume and checkpoint.is_file():
        saved = load_weights(checkpoint, "training checkpoint", loop.device)
        state = TrainState.from_checkpoint(saved, model, loop.optimizer)
    for epoch in range(state.epoch, config.epochs):
        if config.early_stopping and state.plateau.since_best >= config.early_stopping:
            break
        log = _epoch(loop, state, epoch, train_index, val_index, seed, on_step)
        state.epoch = epoch + 1
        if loop.rank == 0:
            atomic_write(checkpoint, lambda handle: torch.save(state.to_checkpoint(model, loop.optimizer), handle))
        barrier()
        if on_epoch:
            on_epoch(log)
        if should_stop is not None and share(loop.rank == 0 and should_stop(log)):
            raise TrainingStopped(f"stopped after epoch {log.epoch}")
    _swap_batch_norms(model, nn.BatchNorm2d)  # the plain layers back, if torchrun swapped them
    _set_autocast(model, None)
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    return state.history


def _prepare(model: nn.Module, audio: Audio, rows: dict[str, np.ndarray], config: TrainConfig) -> _Loop:
    rank, world = rank_and_world()
    device = select_device(config.device)
    model.to(device)
    if device.type == "cuda":  # cuDNN's fastest convolutions take NHWC weights
        model.to(memory_format=torch.channels_last)
    _set_autocast(model, torch.bfloat16 if device.type == "cuda" and config.amp else None)
    if world > 1:  # BatchNorm statistics over the global batch while training
        _swap_batch_norms(model, GlobalBatchNorm2d)
    # Under torchrun each process takes its share of every batch; DistributedDataParallel averages the gradients,
    # so the global batch (and the learning-rate schedule) is the same as in one process. Each process keeps its
    # own memory bank: buffers are not broadcast (global BatchNorm keeps the statistics equal).
    wrapped = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False) if world > 1 else model
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                weight_decay=config.weight_decay)
    y = {key: torch.from_numpy(value) for key, value in rows.items()}
    # the audio stays on disk (in the store); each batch is read, then goes to the device
    return _Loop(model, wrapped, audio, y, optimizer, config, device, rank, world)


def _epoch(loop: _Loop, state: TrainState, epoch: int, train_index: np.ndarray, val_index: np.ndarray, seed: int,
           on_step: Callable[[int, int, int], None] | None) -> EpochLog:
    """One pass over the training windows, then validation; updates `state` (history, best weights, plateau)."""
    config, model = loop.config, loop.model
    began = time.perf_counter()
    model.train()
    order = np.random.default_rng([seed, epoch]).permutation(train_index)
    micro_batches = math.ceil(len(train_index) / config.batch_size)
    steps_per_epoch = math.ceil(micro_batches / config.accumulate)
    shares = []
    for micro in range(micro_batches):
        batch = order[micro * config.batch_size : (micro + 1) * config.batch_size]
        shares.append(batch[loop.rank :: loop.world] if len(batch) >= loop.world else batch)
    total, count, lr = 0.0, 0, config.lr
    for micro, (inputs, wanted) in enumerate(batches(loop.x, loop.y, shares, loop.device, loop.workers)):
        loss = model.loss(loop.wrapped(inputs), wanted, epoch)
        (loss / config.accumulate).backward()
        total += loss.item() * len(inputs)
        count += len(inputs)
        if (micro + 1) % config.accumulate == 0 or micro + 1 == micro_batches:
            step = micro // config.accumulate
            lr = _learning_rate(config, epoch * steps_per_epoch + step, steps_per_epoch, state.plateau.lr)
            for group in loop.optimizer.param_groups:
                group["lr"] = lr
            loop.optimizer.step()
            loop.optimizer.zero_grad(set_to_none=True)
            if state.ema is not None:
                _ema_update(state.ema, model, config.ema)
            if on_step:
                on_step(epoch, step + 1, steps_per_epoch)
    log = _validate(loop, state, val_index, EpochLog(epoch + 1, total / count, 0.0, None, lr, 0.0))
    log.seconds = time.perf_counter() - began
    state.history.append(log)
    state.plateau.update(log.val_loss, config)
    return log


def _validate(loop: _Loop, state: TrainState, val_index: np.ndarray, log: EpochLog) -> EpochLog:
    """Score the weights that would be kept (their EMA, when enabled) on the validation windows."""
    model = loop.model
    live = None
    if state.ema is not None:
        live = _copy(model)
        model.load_state_dict(state.ema)
    model.eval()
    with torch.no_grad():  # batch by batch; only what validation scores (embedding, logits) is kept
        chunks = [val_index[i : i + 64] for i in range(0, len(val_index), 64)]
        outputs = (model(inputs) for inputs, _ in batches(loop.x, {}, chunks, loop.device, 0))
        scored = _gathered(({key: out[key] for key in ("embedding", "logits") if key in out} for out in outputs),
                           len(val_index))
    wanted = {key: value[torch.from_numpy(val_index)].to(loop.device) for key, value in loop.y.items()}
    log.val_loss, log.val_cosine, log.val_accuracy = model.validation(scored, wanted)
    if log.score() > state.best_score:
        state.best_score, state.best_weights = log.score(), _copy(model)
    if live is not None:
        model.load_state_dict(live)
    return log


def _set_autocast(model: nn.Module, dtype: torch.dtype | None) -> None:
    """bf16 for the bodies of every audio network being trained (student and peer); their front-ends stay FP32."""
    for module in model.modules():
        if hasattr(module, "autocast"):
            module.autocast = dtype


class GlobalBatchNorm2d(nn.BatchNorm2d):
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


def _swap_batch_norms(model: nn.Module, kind: type[nn.BatchNorm2d]) -> None:
    """Replace every BatchNorm2d child not already of `kind` by one of `kind` holding the very same parameters and
    buffers (so optimiser, weights, checkpoints and exports are unchanged)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d) and type(child) is not kind:
                swapped = kind(child.num_features, child.eps, child.momentum, child.affine,
                               child.track_running_stats)
                swapped.training = child.training
                for key in ("weight", "bias"):
                    setattr(swapped, key, getattr(child, key))
                for key, buffer in child.named_buffers(recurse=False):
                    setattr(swapped, key, buffer)
                setattr(parent, name, swapped)


class _Rows(torch.utils.data.Dataset):
    def __init__(self, x: Audio, y: dict[str, torch.Tensor]):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return torch.as_tensor(self.x[index]), {key: value[index] for key, value in self.y.items()}


def batches(x: Audio, y: dict[str, torch.Tensor], index_batches: list[np.ndarray], device: torch.device,
            workers: int):
    """(inputs, {name: rows}) on `device` for each list of row indices, in the given order; the audio of each batch
    is read when it is needed. With workers (on CUDA), a DataLoader reads the next batches into pinned memory while
    the GPU trains; copies run without blocking."""
    if workers == 0:
        for index in index_batches:
            rows = np.asarray(index)
            yield (torch.as_tensor(x[rows]).to(device),
                   {key: value[torch.from_numpy(rows)].to(device) for key, value in y.items()})
        return
    loader = torch.utils.data.DataLoader(_Rows(x, y), batch_sampler=[list(map(int, b)) for b in index_batches],
                                         num_workers=workers, pin_memory=device.type == "cuda")
    for inputs, targets in loader:
        yield (inputs.to(device, non_blocking=True),
               {key: value.to(device, non_blocking=True) for key, value in targets.items()})
