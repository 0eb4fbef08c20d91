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

from edgekd.audio.frontend import FrontendSpec, LogMel
from edgekd.config import StrictModel


class _FrontendKeys(StrictModel):
    sample_rate: int = Field(8000, ge=1000, le=96000)
    n_fft: int = Field(256, ge=16)
    hop_length: int = Field(160, ge=1)
    n_mels: int = Field(64, ge=4)
    top_db: float | None = Field(80.0, gt=0)

    def frontend(self) -> FrontendSpec:
        return FrontendSpec(self.sample_rate, self.n_fft, self.hop_length, self.n_mels, top_db=self.top_db)


class _AudioStudent(nn.Module):
    """Front-end + BN on the log-mel, then a family's body; `embed_features` is the network alone (for export)."""

    def __init__(self, config: _FrontendKeys, embedding_dim: int, body: nn.Module):
        super().__init__()
        self.config, self.embedding_dim = config, embedding_dim
        self.frontend = LogMel(config.frontend())
        self.input_norm = nn.BatchNorm2d(1)
        self.body = body

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.frontend(audio))

    def embed_features(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.body(self.input_norm(logmel[:, None]))


class L3StudentConfig(_FrontendKeys):
    name: Literal["l3"] = "l3"
    divisors: tuple[int, int, int, int] = Field((2, 2, 2, 8), description="of L3's 64/128/256/512 filters per block")


class DsCnnConfig(_FrontendKeys):
    name: Literal["dscnn"] = "dscnn"
    channels: int = Field(64, ge=4)
    blocks: int = Field(4, ge=1)


class MobileNetConfig(_FrontendKeys):
    name: Literal["mobilenet"] = "mobilenet"
    width: float = Field(1.0, gt=0, description="channel multiplier")
    # (expansion, channels, repeats, stride) per stage, as MobileNetV2's table
    stages: list[tuple[int, int, int, int]] = [(1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2)]


def _conv_bn_relu(c_in: int, c_out: int, kernel=3, stride=1, groups=1, bias=False) -> list[nn.Module]:
    padding = tuple(k // 2 for k in kernel) if isinstance(kernel, tuple) else kernel // 2
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=bias), nn.BatchNorm2d(c_out),
            nn.ReLU()]


class _GlobalPool(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3)) if self.kind == "max" else x.mean(dim=(2, 3))


def build_l3_student(config: L3StudentConfig, embedding_dim: int) -> nn.Module:
    widths = [base // d for base, d in zip((64, 128, 256, 512), config.divisors)]
    widths[-1] = embedding_dim  # the last conv ("audio_embedding_layer") outputs the embedding
    layers: list[nn.Module] = []
    c_in = 1
    for block, width in enumerate(widths):
        for _ in range(2):  # conv biases as in L3-Net, so parameter counts match the papers
            layers += _conv_bn_relu(c_in, width, bias=True)
            c_in = width
        if block < 3:
            layers.append(nn.MaxPool2d(2))
    return _AudioStudent(config, embedding_dim, nn.Sequential(*layers, _GlobalPool("max")))


def build_dscnn(config: DsCnnConfig, embedding_dim: int) -> nn.Module:
    c = config.channels
    layers = _conv_bn_relu(1, c, kernel=(9, 3), stride=2)  # MLPerf Tiny DS-CNN: a strided 10x4-like first conv
    for _ in range(config.blocks):
        layers += _conv_bn_relu(c, c, groups=c) + _conv_bn_relu(c, c, kernel=1)
    return _AudioStudent(config, embedding_dim, nn.Sequential(*layers, _GlobalPool("mean"), nn.Linear(c, embedding_dim)))


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int):
        super().__init__()
        hidden = c_in * expansion
        layers = _conv_bn_relu(c_in, hidden, kernel=1) if expansion != 1 else []
        layers += _conv_bn_relu(hidden, hidden, stride=stride, groups=hidden)
        layers += [nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


def build_mobilenet(config: MobileNetConfig, embedding_dim: int) -> nn.Module:
    def scaled(channels: int) -> int:
        return max(8, int(round(channels * config.width / 8)) * 8)

    c_in = scaled(16)
    layers: list[nn.Module] = _conv_bn_relu(1, c_in, stride=2)
    for expansion, channels, repeats, stride in config.stages:
        for index in range(repeats):
            layers.append(_InvertedResidual(c_in, scaled(channels), expansion, stride if index == 0 else 1))
            c_in = scaled(channels)
    layers += _conv_bn_relu(c_in, embedding_dim, kernel=1)
    return _AudioStudent(config, embedding_dim, nn.Sequential(*layers, _GlobalPool("mean")))


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
