"""Student families beyond the demo CNN, each on its own log-mel front-end:

- `l3`: the L3-Net audio layout with per-block width divisors (SEA's students 0-3: divisors 1/1/1/1, 2/2/2/2,
  2/2/2/4 and 2/2/2/8 of 64/128/256/512 filters), 2 convs per block, global max pool.
- `dscnn`: a depthwise-separable CNN for microcontrollers, in the style of MLPerf Tiny's keyword-spotting DS-CNN.
- `mobilenet`: MobileNetV2-style inverted residual blocks for Cortex-A class devices.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from edgekd.config import StrictModel
from edgekd.students.base import AudioStudent, FrontendKeys, GlobalPool, conv_bn_relu


class L3StudentConfig(FrontendKeys):
    name: Literal["l3"] = "l3"
    divisors: tuple[int, int, int, int] = Field((2, 2, 2, 8), description="of L3's 64/128/256/512 filters per block")


class DsCnnConfig(FrontendKeys):
    name: Literal["dscnn"] = "dscnn"
    channels: int = Field(64, ge=4)
    blocks: int = Field(4, ge=1)


class MobileNetConfig(FrontendKeys):
    name: Literal["mobilenet"] = "mobilenet"
    width: float = Field(1.0, gt=0, description="channel multiplier")
    # (expansion, channels, repeats, stride) per stage, as MobileNetV2's table
    stages: list[tuple[int, int, int, int]] = [(1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2)]


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


def build_dscnn(config: DsCnnConfig, embedding_dim: int) -> nn.Module:
    c = config.channels
    layers = conv_bn_relu(1, c, kernel=(9, 3), stride=2)  # MLPerf Tiny DS-CNN: a strided 10x4-like first conv
    for _ in range(config.blocks):
        layers += conv_bn_relu(c, c, groups=c) + conv_bn_relu(c, c, kernel=1)
    return AudioStudent(config, embedding_dim, nn.Sequential(*layers, GlobalPool("mean"), nn.Linear(c, embedding_dim)))


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


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# Named configurations `edgekd students` reports: SEA's Table 1 students and a default of each family.
PRESETS: dict[str, tuple[StrictModel, int]] = {
    "sea-student-0": (L3StudentConfig(divisors=(1, 1, 1, 1)), 512),
    "sea-student-1": (L3StudentConfig(divisors=(2, 2, 2, 2)), 256),
    "sea-student-2": (L3StudentConfig(divisors=(2, 2, 2, 4)), 128),
    "sea-student-3": (L3StudentConfig(divisors=(2, 2, 2, 8)), 64),
    "dscnn": (DsCnnConfig(), 64),
    "mobilenet": (MobileNetConfig(), 64),
}
