"""A small SEA-style student: its own log-mel front-end, then blocks of 3×3 conv + BN + ReLU with 2×2 max-pools,
a last conv to the embedding dimension, and a global pool (SEA's L3-Net-shaped students, made smaller)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from edgekd.audio.frontend import FrontendSpec, LogMel
from edgekd.config import StrictModel


class SeaCnnConfig(StrictModel):
    name: Literal["sea_cnn"] = "sea_cnn"
    sample_rate: int = Field(8000, ge=1000, le=96000)
    n_fft: int = Field(256, ge=16)
    hop_length: int = Field(160, ge=1)
    n_mels: int = Field(64, ge=4)
    top_db: float | None = Field(80.0, gt=0, description="dB range below each example's maximum; null keeps absolute dB")
    widths: list[int] = Field([8, 16, 32, 32], min_length=1, description="conv channels per block")
    convs_per_block: int = Field(1, ge=1, le=4)
    pool: Literal["max", "mean"] = "mean"

    def frontend(self) -> FrontendSpec:
        return FrontendSpec(self.sample_rate, self.n_fft, self.hop_length, self.n_mels, top_db=self.top_db)


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class SeaCnn(nn.Module):
    """(batch, samples) audio at `sample_rate` → (batch, embedding_dim)."""

    def __init__(self, config: SeaCnnConfig, embedding_dim: int):
        super().__init__()
        self.config = config
        self.embedding_dim = embedding_dim
        self.frontend = LogMel(config.frontend())
        self.input_norm = nn.BatchNorm2d(1)  # SEA normalises the dB mel with a BN layer
        layers: list[nn.Module] = []
        c_in = 1
        for block, width in enumerate(config.widths):
            for _ in range(config.convs_per_block):
                layers += _conv_bn_relu(c_in, width)
                c_in = width
            if block < len(config.widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.embedding = nn.Conv2d(c_in, embedding_dim, 1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.frontend(audio))

    def embed_features(self, logmel: torch.Tensor) -> torch.Tensor:
        """(batch, n_mels, frames) log-mel → embedding: the network without its front-end."""
        x = self.embedding(self.body(self.input_norm(logmel[:, None])))
        return x.amax(dim=(2, 3)) if self.config.pool == "max" else x.mean(dim=(2, 3))
