"""Teacher-free soft labels (ReffAKD, Doshi & Kim 2024): a compact autoencoder on the log-mel, trained in seconds;
the cosine similarities between its class-mean codes become each class's soft label, used by `kd` in place of a
teacher's."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from torch import nn

from edgekd.distillation import Method
from edgekd.runtime import seeded
from edgekd.schema import StrictModel
from edgekd.supervision import LogMel, Supervision


class TeacherFreeConfig(StrictModel):
    latent: int = Field(32, ge=2)
    epochs: int = Field(30, ge=1)
    temperature: float = Field(0.1, gt=0, description="softmax temperature over class-code similarities")


class _AutoEncoder(nn.Module):
    def __init__(self, latent: int):
        super().__init__()
        self.encode = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                                    nn.Conv2d(16, latent, 3, 2, 1))
        self.decode = nn.Sequential(nn.ConvTranspose2d(latent, 16, 4, 2, 1), nn.ReLU(),
                                    nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(8, 1, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encode(x)
        return code.mean(dim=(2, 3)), self.decode(code)


def autoencoder_soft_labels(logmel: LogMel, labels: np.ndarray, train: np.ndarray, num_classes: int,
                            config: TeacherFreeConfig, seed: int) -> tuple[np.ndarray, float]:
    """Train a compact autoencoder on the training log-mels, average its pooled codes per class, and give each window
    the soft label of its class: softmax over classes of the cosine similarity between class codes. Log-mels are
    computed per batch, never all at once. Returns (log soft labels per window, final reconstruction MSE)."""
    mean, std = _moments(logmel, train)

    def inputs(rows: np.ndarray) -> torch.Tensor:
        # pad time and mel to multiples of 8 so three stride-2 convs and their transposes give back the input shape
        x = (torch.from_numpy(logmel[rows])[:, None] - mean) / (std + 1e-6)
        return nn.functional.pad(x, (0, -x.shape[3] % 8, 0, -x.shape[2] % 8))

    with seeded(seed):
        model = _AutoEncoder(config.latent)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    mse = float("nan")
    for _ in range(config.epochs):
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        for start in range(0, len(order), 32):
            batch = inputs(order[start : start + 32])
            loss = nn.functional.mse_loss(model(batch)[1], batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            mse = loss.item()
    with torch.no_grad():
        codes = torch.cat([model(inputs(train[i : i + 256]))[0] for i in range(0, len(train), 256)])
    centres = torch.stack([codes[torch.from_numpy(labels[train] == c)].mean(0) if (labels[train] == c).any()
                           else torch.zeros(codes.shape[1]) for c in range(num_classes)])
    similarity = nn.functional.normalize(centres, dim=1) @ nn.functional.normalize(centres, dim=1).T
    class_soft = torch.log_softmax(similarity / config.temperature, 1).numpy().astype(np.float32)
    return class_soft[labels], mse


def _moments(logmel: LogMel, rows: np.ndarray) -> tuple[float, float]:
    """Mean and (unbiased) standard deviation of every log-mel value of `rows`, accumulated batch by batch."""
    count, total, squares = 0, 0.0, 0.0
    for batch in logmel.batches(rows):
        values = batch.astype(np.float64)
        count, total, squares = count + values.size, total + values.sum(), squares + (values**2).sum()
    mean = total / count
    return mean, float(np.sqrt(max(squares - count * mean**2, 0.0) / max(count - 1, 1)))


class TeacherFree(Method):
    name = "teacher_free"
    config_model = TeacherFreeConfig
    order = 50
    needs_labels = True
    requires = {"kd": "revises or replaces soft labels: add a 'kd' section (the head)"}

    def prepare(self, supervision: Supervision) -> None:
        soft, mse = autoencoder_soft_labels(supervision.logmel, supervision.labels, supervision.train,
                                            supervision.num_classes, self.config, supervision.seed)
        supervision.rows["soft"] = soft
        supervision.report["teacher_free"] = {"autoencoder_reconstruction_mse": mse}


METHOD = TeacherFree
