"""The L3-Net audio family (OpenL3, EdgeL3, SEA students) from Keras HDF5 files, re-implemented in plain torch.

The network is rebuilt layer by layer from the file's `model_config` JSON when present; weights-only files (OpenL3's
releases) get the canonical L3 layout with filter counts read from the kernels. Facts that matter for equality with
Keras: BatchNorm epsilon 1e-3; kapre's front-end uses TF "same" padding, a power-1 (magnitude) mel from librosa's htk
filterbank with slaney norm, 10·log10 clamped at 1e-10, minus each example's maximum, floored at -80 dB. The DFT and
mel kernels stored in the file equal cos × periodic-Hann and librosa's filterbank, so the front-end is rebuilt.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import h5py
import librosa
import numpy as np
import torch
from torch import nn

from edgekd.errors import ModelError
from edgekd.frontend import dft_kernels, power_spectrum
from edgekd.teachers.base import (
    ComputedTeacher,
    embed_in_segments,
    example_input,
    file_digest,
    require_file,
)
from edgekd.teachers.configs import L3Config

# OpenL3's input representations and pooling, for weights-only files (openl3/models.py).
_OPENL3_FRONTENDS = {
    "mel256": {"n_dft": 2048, "n_hop": 242, "n_mels": 256, "padding": "same"},
    "mel128": {"n_dft": 2048, "n_hop": 242, "n_mels": 128, "padding": "same"},
    "linear": {"n_dft": 512, "n_hop": 242, "n_mels": None, "padding": "valid"},
}
_OPENL3_POOL_6144 = {"mel256": (8, 8), "mel128": (4, 8), "linear": (8, 8)}


class KapreFrontend(nn.Module):
    """kapre's Spectrogram / Melspectrogram with decibel output, for a fixed input length."""

    def __init__(self, sample_rate: int, samples: int, n_dft: int, n_hop: int, n_mels: int | None, padding: str,
                 power: float = 1.0, fmin: float = 0.0, fmax: float | None = None, htk: bool = True,
                 norm: Any = 1, decibel: bool = True):
        super().__init__()
        self.hop, self.power, self.decibel = n_hop, power, decibel
        if padding == "same":  # TensorFlow: output length ceil(n/stride), padding split with the extra on the right
            frames = -(-samples // n_hop)
            total = max((frames - 1) * n_hop + n_dft - samples, 0)
            self.pad = (total // 2, total - total // 2)
        else:
            self.pad = (0, 0)
        self.register_buffer("dft", dft_kernels(n_dft), persistent=False)
        if n_mels:
            with warnings.catch_warnings():  # OpenL3's 256 mels at n_dft 2048 leave some filters empty, as in kapre
                warnings.simplefilter("ignore", UserWarning)
                fb = librosa.filters.mel(sr=sample_rate, n_fft=n_dft, n_mels=n_mels, fmin=fmin,
                                         fmax=fmax or sample_rate / 2, htk=htk, norm="slaney" if norm == 1 else None)
            self.register_buffer("mel", torch.from_numpy(fb.astype(np.float32)), persistent=False)
        else:
            self.mel = None

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = power_spectrum(nn.functional.pad(audio[:, None, :], self.pad), self.dft, self.hop)
        if self.mel is not None:
            spec = torch.matmul(self.mel, spec)
        if self.power != 2.0:
            spec = torch.sqrt(spec) ** self.power if self.power != 1.0 else torch.sqrt(spec)
        if self.decibel:
            spec = 10.0 * torch.log10(torch.clamp(spec, min=1e-10))
            spec = torch.clamp(spec - spec.amax(dim=(1, 2), keepdim=True), min=-80.0)
        return spec[:, None]  # (batch, 1 channel, frequency, time): Keras's channels_last (H=freq, W=time)


class ChannelsLastFlatten(nn.Module):
    """Keras Flatten on channels_last maps: (H, W, C) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


class L3Net(nn.Module):
    """(batch, samples) → (batch, embedding)."""

    def __init__(self, layers: list[nn.Module], sample_rate: int, samples: int):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.sample_rate, self.samples = sample_rate, samples

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.layers(audio)


def _read_weights(handle: h5py.File) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    group = handle["model_weights"] if "model_weights" in handle else handle
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("layer_names", list(group.keys()))]
    weights = {}
    for name in names:
        layer = group[name]
        weight_names = [w.decode() if isinstance(w, bytes) else w for w in layer.attrs.get("weight_names", [])]
        # "conv2d_1/kernel:0" → "kernel"
        weights[name] = {w.split("/")[-1].split(":")[0]: np.asarray(layer[w]) for w in weight_names}
    return weights, names


def _bn(weights: dict[str, np.ndarray], epsilon: float) -> nn.BatchNorm2d:
    channels = len(next(iter(weights.values())))
    bn = nn.BatchNorm2d(channels, eps=epsilon)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(weights.get("gamma", np.ones(channels, np.float32))))
        bn.bias.copy_(torch.from_numpy(weights.get("beta", np.zeros(channels, np.float32))))
        bn.running_mean.copy_(torch.from_numpy(weights["moving_mean"]))
        bn.running_var.copy_(torch.from_numpy(weights["moving_variance"]))
    return bn


def _conv(weights: dict[str, np.ndarray], strides=(1, 1)) -> nn.Conv2d:
    kernel = weights["kernel"]  # HWIO
    kh, kw, c_in, c_out = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0 or tuple(strides) != (1, 1):
        raise ModelError(f"only odd-sized, stride-1 'same' convolutions are supported (got {kernel.shape})")
    conv = nn.Conv2d(c_in, c_out, (kh, kw), padding=(kh // 2, kw // 2), bias="bias" in weights)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
        if "bias" in weights:
            conv.bias.copy_(torch.from_numpy(weights["bias"]))
    return conv


def _from_model_config(config: dict, weights: dict, path: Path) -> L3Net:
    layers: list[nn.Module] = []
    sample_rate = samples = None
    for layer in config["config"]["layers"]:
        kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
        if kind == "InputLayer":
            samples = int(cfg["batch_input_shape"][-1])
        elif kind in ("Melspectrogram", "Spectrogram"):
            sample_rate = int(cfg.get("sr", 0)) or None
            mel = kind == "Melspectrogram"
            if sample_rate is None and mel:
                raise ModelError(f"{path}: layer '{name}' has no sample rate")
            layers.append(KapreFrontend(
                sample_rate or 0, samples, cfg["n_dft"], cfg["n_hop"], cfg["n_mels"] if mel else None, cfg["padding"],
                power=cfg["power_melgram"] if mel else cfg["power_spectrogram"], fmin=cfg.get("fmin", 0.0),
                fmax=cfg.get("fmax"), htk=cfg.get("htk", True), norm=cfg.get("norm", 1),
                decibel=cfg["return_decibel_melgram"] if mel else cfg["return_decibel_spectrogram"],
            ))
        elif kind == "BatchNormalization":
            layers.append(_bn(weights[name], cfg["epsilon"]))
        elif kind == "Conv2D":
            if cfg.get("padding") != "same":
                raise ModelError(f"{path}: layer '{name}': only 'same' convolutions are supported")
            layers.append(_conv(weights[name], cfg.get("strides", (1, 1))))
            if cfg.get("activation", "linear") == "relu":
                layers.append(nn.ReLU())
        elif kind == "Activation":
            if cfg["activation"] == "relu":
                layers.append(nn.ReLU())
            elif cfg["activation"] != "linear":
                raise ModelError(f"{path}: layer '{name}': activation '{cfg['activation']}' is not supported")
        elif kind == "MaxPooling2D":
            layers.append(nn.MaxPool2d(tuple(cfg["pool_size"]), tuple(cfg["strides"] or cfg["pool_size"])))
        elif kind == "Flatten":
            layers.append(ChannelsLastFlatten())
        else:
            raise ModelError(f"{path}: layer '{name}' of type {kind} is not supported by the L3 importer")
    if samples is None or sample_rate is None:
        raise ModelError(f"{path}: model_config has no input length or front-end sample rate")
    return L3Net(layers, sample_rate, samples)


class _GlobalMaxPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3), keepdim=True)


def _canonical_l3(weights: dict, names: list[str], fallback: L3Config, front: dict | None = None) -> L3Net:
    """OpenL3's layout for weights-only files: BN, 4 blocks of 2×(conv, BN, ReLU), max-pools, embedding pool."""
    convs = [n for n in names if "kernel" in weights.get(n, {})]
    norms = [n for n in names if "moving_mean" in weights.get(n, {})]
    if len(convs) != 8 or len(norms) != 9:
        raise ModelError(f"weights-only file does not have the L3 layout (8 convs, 9 batch norms); "
                         f"found {len(convs)} and {len(norms)}")
    front = front or _OPENL3_FRONTENDS[fallback.input_repr]
    samples = fallback.sample_rate
    layers: list[nn.Module] = [KapreFrontend(fallback.sample_rate, samples, front["n_dft"], front["n_hop"],
                                             front["n_mels"], front["padding"]), _bn(weights[norms[0]], 1e-3)]
    for index, (conv, norm) in enumerate(zip(convs, norms[1:])):
        layers += [_conv(weights[conv]), _bn(weights[norm], 1e-3), nn.ReLU()]
        if index in (1, 3, 5):
            layers.append(nn.MaxPool2d(2))
    if fallback.embedding_size == 6144:
        pool = _OPENL3_POOL_6144[fallback.input_repr]
        layers.append(nn.MaxPool2d(pool))
    else:
        layers.append(_GlobalMaxPool())
    layers.append(ChannelsLastFlatten())
    return L3Net(layers, fallback.sample_rate, samples)


def random_l3(filters: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 512, 512), sample_rate: int = 48000,
              n_dft: int = 2048, n_hop: int = 242, n_mels: int | None = 256, seed: int = 0) -> L3Net:
    """An L3-layout network with random (He-initialised) weights: the OpenL3 teacher by default; SEA's students with
    their own filters and front-end (student 3: 8 kHz, n_dft 1024, hop 160, 64 mels, 32/32/64/64/128/128/64/64)."""
    rng = np.random.default_rng(seed)

    def bn(channels: int) -> dict:
        return {"gamma": np.ones(channels, np.float32), "beta": np.zeros(channels, np.float32),
                "moving_mean": np.zeros(channels, np.float32), "moving_variance": np.ones(channels, np.float32)}

    weights, names, c_in = {"bn0": bn(1)}, ["bn0"], 1
    for index, c_out in enumerate(filters):
        kernel = rng.standard_normal((3, 3, c_in, c_out)).astype(np.float32) * np.sqrt(2 / (9 * c_in))
        weights[f"conv{index}"] = {"kernel": kernel, "bias": np.zeros(c_out, np.float32)}
        weights[f"bn{index + 1}"] = bn(c_out)
        names += [f"conv{index}", f"bn{index + 1}"]
        c_in = c_out
    front = {"n_dft": n_dft, "n_hop": n_hop, "n_mels": n_mels, "padding": "same"}
    return _canonical_l3(weights, names, L3Config(sample_rate=sample_rate), front).eval()


def load_l3(path: Path, fallback: L3Config | None = None) -> L3Net:
    fallback = fallback or L3Config()
    try:
        with h5py.File(path, "r") as handle:
            config = handle.attrs.get("model_config")
            weights, names = _read_weights(handle)
    except OSError as err:
        raise ModelError(f"{path}: not a readable HDF5 file ({err})") from None
    try:
        if config is not None:
            config = json.loads(config.decode() if isinstance(config, bytes) else config)
            net = _from_model_config(config, weights, path)
        else:
            net = _canonical_l3(weights, names, fallback)
    except KeyError as err:
        raise ModelError(f"{path}: weights missing for {err}") from None
    return net.eval()


def trainable_parameters(net: L3Net) -> int:
    """Keras's count: conv kernels and biases plus BN gamma and beta (moving statistics are not trainable)."""
    return sum(p.numel() for p in net.parameters())


class L3Teacher(ComputedTeacher):
    def __init__(self, config: L3Config):
        self.config = config
        self.path = require_file(config.path, "l3", "a Keras .h5 such as openl3_audio_mel256_music.h5 (OpenL3) "
                                 "or edgel3_sea_ust_audio_emb_64.h5 (SEA)")
        self.net = load_l3(self.path, config)
        self.sample_rate = self.net.sample_rate
        with torch.no_grad():
            self.dim = int(self.net(torch.zeros(1, self.net.samples)).shape[1])

    def identity(self) -> dict:
        """The network as loaded (rate, input length, mel bands, embedding size), not the recipe's fallback keys,
        which a file with its own model_config ignores."""
        front = self.net.layers[0]
        mels = getattr(front, "mel", None)
        return {"teacher": "l3", "weights": file_digest(self.path), "sample_rate": self.net.sample_rate,
                "samples": self.net.samples, "n_mels": None if mels is None else int(mels.shape[0]),
                "embedding_size": self.dim}

    def to(self, device: torch.device) -> "L3Teacher":
        self.net.to(device)
        return self

    @torch.inference_mode()
    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        return embed_in_segments(self.net, audio, self.net.samples, self.config.batch_size)

    def deployable(self, window_seconds: float) -> tuple[nn.Module, torch.Tensor, int]:
        runs = max(1, -(-int(round(window_seconds * self.sample_rate)) // self.net.samples))
        return self.net, example_input(self.net.samples), runs
