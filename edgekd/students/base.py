"""What every student shares: its own log-mel front-end, a BatchNorm on the log-mel, then a family's body."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from edgekd.audio.frontend import FrontendSpec, LogMel
from edgekd.config import StrictModel


class FrontendKeys(StrictModel):
    sample_rate: int = Field(8000, ge=1000, le=96000)
    n_fft: int = Field(256, ge=16)
    hop_length: int = Field(160, ge=1)
    n_mels: int = Field(64, ge=4)
    top_db: float | None = Field(80.0, gt=0, description="dB range below each example's maximum; null: absolute dB")

    def frontend(self) -> FrontendSpec:
        return FrontendSpec(self.sample_rate, self.n_fft, self.hop_length, self.n_mels, top_db=self.top_db)


class AudioStudent(nn.Module):
    """(batch, samples) audio → (batch, embedding_dim). `embed_features` is the network alone, on log-mel (for
    `edgekd export --frontend exclude`). While training with `autocast` set (bf16 on CUDA), the body runs in
    reduced precision and the front-end stays FP32: a DFT in bf16 would lose the quiet bins."""

    def __init__(self, config: FrontendKeys, embedding_dim: int, body: nn.Module):
        super().__init__()
        self.config, self.embedding_dim = config, embedding_dim
        self.frontend = LogMel(config.frontend())
        self.input_norm = nn.BatchNorm2d(1)  # SEA normalises the dB mel with a BN layer
        self.body = body
        self.autocast: torch.dtype | None = None

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        features = self.frontend(audio.float())
        if self.training and self.autocast is not None:
            with torch.autocast(device_type=features.device.type, dtype=self.autocast):
                return self.embed_features(features).float()
        return self.embed_features(features)

    def embed_features(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.body(self.input_norm(logmel[:, None]))


class GlobalPool(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3)) if self.kind == "max" else x.mean(dim=(2, 3))


def conv_bn_relu(c_in: int, c_out: int, kernel=3, stride=1, groups=1, bias=False) -> list[nn.Module]:
    padding = tuple(k // 2 for k in kernel) if isinstance(kernel, tuple) else kernel // 2
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=bias), nn.BatchNorm2d(c_out),
            nn.ReLU()]
