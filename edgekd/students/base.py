"""What every student shares: its own log-mel front-end, a BatchNorm on the log-mel, then a family's body."""

from __future__ import annotations

import torch
from torch import nn

from edgekd.frontend import FrontendSpec, LogMel
from edgekd.students.configs import FrontendKeys


class AudioStudent(nn.Module):
    """(batch, samples) audio → (batch, embedding_dim). `embed_features` is the network alone, on log-mel (for
    `edgekd export --frontend exclude`). While training with `autocast` set (bf16 on CUDA), the body runs in
    reduced precision and the front-end stays FP32: a DFT in bf16 would lose the quiet bins."""

    def __init__(self, config: FrontendKeys, embedding_dim: int, body: nn.Module):
        super().__init__()
        self.config, self.embedding_dim = config, embedding_dim
        self.frontend = LogMel(FrontendSpec(config.sample_rate, config.n_fft, config.hop_length, config.n_mels,
                                             top_db=config.top_db))
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


class Network(nn.Module):
    """A student after its front-end, (batch, n_mels, frames) log-mel → embedding: what runtimes that compute the
    log-mel themselves run."""

    def __init__(self, student: AudioStudent):
        super().__init__()
        self.student = student

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.student.embed_features(logmel)


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


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
