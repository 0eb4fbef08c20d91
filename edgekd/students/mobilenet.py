"""MobileNetV2-style inverted residual blocks for Cortex-A class devices."""

from __future__ import annotations

import torch
from torch import nn

from edgekd.students.base import AudioStudent, GlobalPool, conv_bn_relu
from edgekd.students.configs import MobileNetConfig


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int):
        super().__init__()
        hidden = c_in * expansion
        layers = conv_bn_relu(c_in, hidden, kernel=1) if expansion != 1 else []
        layers += conv_bn_relu(hidden, hidden, stride=stride, groups=hidden)
        layers += [nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


def build_mobilenet(config: MobileNetConfig, embedding_dim: int) -> nn.Module:
    def scaled(channels: int) -> int:
        return max(8, int(round(channels * config.width / 8)) * 8)

    c_in = scaled(16)
    layers: list[nn.Module] = conv_bn_relu(1, c_in, stride=2)
    for expansion, channels, repeats, stride in config.stages:
        for index in range(repeats):
            layers.append(_InvertedResidual(c_in, scaled(channels), expansion, stride if index == 0 else 1))
            c_in = scaled(channels)
    layers += conv_bn_relu(c_in, embedding_dim, kernel=1)
    return AudioStudent(config, embedding_dim, nn.Sequential(*layers, GlobalPool("mean")))
