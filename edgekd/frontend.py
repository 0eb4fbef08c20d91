"""Log-mel front-end in plain torch.

The STFT is a Conv1d with fixed windowed-DFT kernels rather than torch.stft: it matches torch.stft to ~1e-6,
exports to ONNX with every exporter, and runs on runtimes that have no STFT op. No torchaudio.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import librosa
import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class FrontendSpec:
    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    fmin: float = 0.0
    fmax: float | None = None
    log_floor: float = 1e-10  # power floor before the log (dB), as kapre/librosa clamp
    top_db: float | None = 80.0  # dB relative to each example's maximum, floored at -top_db (kapre, librosa)

    def num_frames(self, num_samples: int) -> int:
        # centre padding of n_fft//2 on both sides, as librosa's default
        return 1 + num_samples // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


def dft_kernels(n_fft: int) -> torch.Tensor:
    """(2·bins, 1, n_fft) Conv1d kernels: periodic-Hann-windowed cos rows, then −sin rows, for bins 0..n_fft/2."""
    n_bins = n_fft // 2 + 1
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    time = torch.arange(n_fft, dtype=torch.float64)
    freq = torch.arange(n_bins, dtype=torch.float64)
    phase = 2 * math.pi * freq[:, None] * time[None, :] / n_fft
    return torch.cat([torch.cos(phase) * window, -torch.sin(phase) * window])[:, None, :].float()


def power_spectrum(framed: torch.Tensor, kernels: torch.Tensor, hop: int) -> torch.Tensor:
    """(batch, 1, padded samples) → (batch, bins, frames) |STFT|²."""
    spectrum = nn.functional.conv1d(framed, kernels, stride=hop)
    bins = kernels.shape[0] // 2
    real, imag = spectrum[:, :bins], spectrum[:, bins:]
    return real * real + imag * imag


class LogMel(nn.Module):
    """(batch, samples) audio → (batch, n_mels, frames) log-mel power in dB."""

    def __init__(self, spec: FrontendSpec):
        super().__init__()
        self.spec = spec
        # Real and imaginary DFT rows stacked as output channels of one Conv1d.
        self.register_buffer("dft", dft_kernels(spec.n_fft), persistent=False)
        mel = librosa.filters.mel(
            sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax
        )
        self.register_buffer("mel", torch.from_numpy(np.asarray(mel, dtype=np.float32)), persistent=False)

    def power(self, audio: torch.Tensor) -> torch.Tensor:
        pad = self.spec.n_fft // 2
        return power_spectrum(nn.functional.pad(audio[:, None, :], (pad, pad)), self.dft, self.spec.hop_length)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.mel, self.power(audio))
        db = 10.0 * torch.log10(torch.clamp(mel, min=self.spec.log_floor))
        if self.spec.top_db is None:
            return db
        # Relative to the loudest bin: gain-invariant, and a bounded range that quantises well.
        db = db - db.amax(dim=(1, 2), keepdim=True)
        return torch.clamp(db, min=-self.spec.top_db)
