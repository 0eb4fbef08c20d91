"""A small audio transformer: log-mel frames grouped into patches → tokens → pre-norm encoder layers → mean pool.

Each attention layer keeps its last attention maps (batch, heads, tokens, tokens) in `attention`, so methods that
distil attention (AMAD) can read them after a forward pass without hooks; export ignores them.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.students.base import AudioStudent
from edgekd.students.configs import TransformerConfig


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) * (width // self.heads) ** -0.5, dim=-1)
        self.attention = weights
        return self.out((weights @ v).transpose(1, 2).reshape(batch, tokens, width))


class EncoderLayer(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attend = SelfAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attend(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerBody(nn.Module):
    def __init__(self, config: TransformerConfig, embedding_dim: int):
        super().__init__()
        self.patch_frames = config.patch_frames
        self.embed = nn.Linear(config.n_mels * config.patch_frames, config.width)
        self.position = nn.Parameter(torch.zeros(1, config.max_tokens, config.width))
        nn.init.normal_(self.position, std=0.02)
        self.layers = nn.ModuleList(EncoderLayer(config.width, config.heads) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width)
        self.project = nn.Linear(config.width, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mels, frames = x.shape[2], x.shape[3]
        tokens = frames // self.patch_frames  # trailing frames that do not fill a patch are dropped
        patches = x[:, 0, :, : tokens * self.patch_frames].reshape(x.shape[0], mels, tokens, self.patch_frames)
        h = self.embed(patches.permute(0, 2, 1, 3).reshape(x.shape[0], tokens, mels * self.patch_frames))
        h = h + self.position[:, :tokens]
        for layer in self.layers:
            h = layer(h)
        return self.project(self.norm(h).mean(1))

    def attention_maps(self) -> list[torch.Tensor]:
        return [layer.attend.attention for layer in self.layers]


def build_transformer(config: TransformerConfig, embedding_dim: int) -> AudioStudent:
    return AudioStudent(config, embedding_dim, TransformerBody(config, embedding_dim))
