"""The L3-Net audio layout with per-block width divisors (SEA's students 0-3: divisors 1/1/1/1, 2/2/2/2,
2/2/2/4 and 2/2/2/8 of 64/128/256/512 filters), 2 convs per block, global max pool."""

from __future__ import annotations

from torch import nn

from edgekd.students.base import AudioStudent, GlobalPool, conv_bn_relu
from edgekd.students.configs import L3StudentConfig


def build_l3_student(config: L3StudentConfig, embedding_dim: int) -> nn.Module:
    widths = [base // d for base, d in zip((64, 128, 256, 512), config.divisors)]
    widths[-1] = embedding_dim  # the last conv ("audio_embedding_layer") outputs the embedding
    layers: list[nn.Module] = []
    c_in = 1
    for block, width in enumerate(widths):
        for _ in range(2):  # conv biases as in L3-Net, so parameter counts match the papers
            layers += conv_bn_relu(c_in, width, bias=True)
            c_in = width
        if block < 3:
            layers.append(nn.MaxPool2d(2))
    return AudioStudent(config, embedding_dim, nn.Sequential(*layers, GlobalPool("max")))
