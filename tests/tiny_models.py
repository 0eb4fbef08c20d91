"""Small embedding networks for tests: importable, so the `python:` teacher can build them by name."""

import torch
from torch import nn


class TinyEmbedder(nn.Module):
    """(batch, samples) → (batch, 16): strided conv features, mean-pooled."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv1d(1, 16, 64, stride=32)
        self.proj = nn.Linear(16, 16)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv(audio[:, None, :])).mean(dim=2)
        return self.proj(features)


def tiny_embedder(seed: int = 0) -> nn.Module:
    return TinyEmbedder(seed).eval()


class SlowEmbedder(TinyEmbedder):
    """A teacher slow enough to be killed part-way through caching."""

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(0.03)
        return super().forward(audio)


def slow_embedder(seed: int = 0) -> nn.Module:
    return SlowEmbedder(seed).eval()


class NanEmbedder(TinyEmbedder):
    """A broken teacher: every embedding is NaN."""

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return super().forward(audio) * float("nan")


def nan_embedder(seed: int = 0) -> nn.Module:
    return NanEmbedder(seed).eval()


def not_a_module() -> str:
    return "a string, not a network"


def flat_embedder(seed: int = 0) -> nn.Module:
    """Broken: one number per batch instead of (batch, dim)."""

    class Flat(TinyEmbedder):
        def forward(self, audio: torch.Tensor) -> torch.Tensor:
            return super().forward(audio).sum()

    return Flat(seed).eval()
