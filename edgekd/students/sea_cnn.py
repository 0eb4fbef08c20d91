"""A small SEA-style student: its own log-mel front-end, then blocks of 3×3 conv + BN + ReLU with 2×2 max-pools,
a last conv to the embedding dimension, and a global pool (SEA's L3-Net-shaped students, made smaller)."""

from __future__ import annotations

from torch import nn

from edgekd.students.base import AudioStudent, GlobalPool, conv_bn_relu
from edgekd.students.configs import SeaCnnConfig


def build_sea_cnn(config: SeaCnnConfig, embedding_dim: int) -> AudioStudent:
    layers: list[nn.Module] = []
    c_in = 1
    for block, width in enumerate(config.widths):
        for _ in range(config.convs_per_block):
            layers += conv_bn_relu(c_in, width)
            c_in = width
        if block < len(config.widths) - 1:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.Conv2d(c_in, embedding_dim, 1), GlobalPool(config.pool)]
    return AudioStudent(config, embedding_dim, nn.Sequential(*layers))
