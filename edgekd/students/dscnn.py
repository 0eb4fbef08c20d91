"""A depthwise-separable CNN for microcontrollers, in the style of MLPerf Tiny's keyword-spotting DS-CNN."""

from __future__ import annotations

from torch import nn

from edgekd.students.base import AudioStudent, GlobalPool, conv_bn_relu
from edgekd.students.configs import DsCnnConfig


def build_dscnn(config: DsCnnConfig, embedding_dim: int) -> nn.Module:
    c = config.channels
    layers = conv_bn_relu(1, c, kernel=(9, 3), stride=2)  # MLPerf Tiny DS-CNN: a strided 10x4-like first conv
    for _ in range(config.blocks):
        layers += conv_bn_relu(c, c, groups=c) + conv_bn_relu(c, c, kernel=1)
    return AudioStudent(config, embedding_dim, nn.Sequential(*layers, GlobalPool("mean"), nn.Linear(c, embedding_dim)))
