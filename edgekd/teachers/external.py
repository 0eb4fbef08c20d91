"""Teachers the user brings: an ONNX file, a TorchScript or torch.export program, a Python factory, or embeddings
computed elsewhere. Each maps (batch, samples) windows at its own sample rate to (batch, dim)."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.errors import EdgekdError, ModelError, first_line
from edgekd.formats.onnx.session import create_session
from edgekd.teachers.base import (
    ComputedTeacher,
    embed_in_segments,
    example_input,
    file_digest,
    require_file,
)
from edgekd.teachers.configs import (
    OnnxTeacherConfig,
    PrecomputedTeacherConfig,
    PythonTeacherConfig,
    TorchScriptTeacherConfig,
)


class _ModuleTeacher(ComputedTeacher):
    """Shared by module-backed teachers: segmenting, device placement, deployable form."""

    net: nn.Module
    sample_rate: int
    input_samples: int | None
    batch_size: int

    def to(self, device: torch.device):
        self.net.to(device)
        return self

    @torch.inference_mode()
    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        length = self.input_samples or audio.shape[1]
        return embed_in_segments(self.net, audio, length, self.batch_size)

    def deployable(self, window_seconds: float) -> tuple[nn.Module, torch.Tensor, int]:
        samples = int(round(window_seconds * self.sample_rate))
        length = self.input_samples or samples
        return self.net, example_input(length), max(1, -(-samples // length))

    def _probe_dim(self, what: str) -> int:
        """The embedding size, from one silent window; a model that cannot embed one is refused here, before any
        data is read."""
        samples = self.input_samples or self.sample_rate
        try:
            with torch.no_grad():
                out = self.net(torch.zeros(1, samples))
        except Exception as err:  # whatever the user's model raises
            raise ModelError(f"{what}: fails on a (batch, {samples}) audio window ({first_line(err)})") from None
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelError(f"{what}: must map (batch, {samples}) audio to (batch, dim) embeddings; got {got}")
        return int(out.shape[1])


def _require_rate(rate: int | None, teacher: str) -> int:
    if rate is None:
        raise EdgekdError(f"teacher '{teacher}' needs key 'teacher.sample_rate' (the model's input rate)")
    return rate


class TorchScriptTeacher(_ModuleTeacher):
    def __init__(self, config: TorchScriptTeacherConfig):
        self.config = config
        self.path = require_file(config.path, "torchscript", "a TorchScript .pt or a torch.export .pt2 program")
        try:
            if self.path.suffix == ".pt2":
                self.net = torch.export.load(str(self.path)).module()
            else:
                self.net = torch.jit.load(str(self.path), map_location="cpu").eval()
        except Exception as err:
            raise ModelError(f"{self.path}: cannot load the program ({first_line(err)})") from None
        self.sample_rate = _require_rate(config.sample_rate, "torchscript")
        self.input_samples, self.batch_size = config.input_samples, config.batch_size
        self.dim = self._probe_dim(str(self.path))

    def identity(self) -> dict:
        return {"teacher": "torchscript", "weights": file_digest(self.path), "input_samples": self.input_samples}


class PythonTeacher(_ModuleTeacher):
    def __init__(self, config: PythonTeacherConfig):
        self.config = config
        module_name, _, attr = config.factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as err:
            raise EdgekdError(f"teacher 'python': cannot import '{config.factory}' ({err})") from None
        what = f"teacher 'python' factory '{config.factory}'"
        try:
            net = factory(**config.kwargs)
        except Exception as err:  # the user's code, called with the recipe's kwargs
            raise EdgekdError(f"{what} raised {type(err).__name__} ({first_line(err)}); check teacher.kwargs") \
                from None
        if not isinstance(net, nn.Module):
            raise EdgekdError(f"{what} must return a torch.nn.Module; it returned {type(net).__name__}")
        self.net = net.eval()
        self.sample_rate = _require_rate(config.sample_rate, "python")
        self.input_samples, self.batch_size = config.input_samples, config.batch_size
        self.dim = self._probe_dim(what)

    def identity(self) -> dict:
        digest = hashlib.sha256()
        for key, value in sorted(self.net.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return {"teacher": "python", "factory": self.config.factory, "kwargs": self.config.kwargs,
                "weights": digest.hexdigest()[:16], "input_samples": self.input_samples}


class OnnxTeacher(ComputedTeacher):
    """Any embedding model in onnxruntime (CUDA provider when present); input contract from keys or metadata."""

    def __init__(self, config: OnnxTeacherConfig):
        self.config = config
        self.path = require_file(config.path, "onnx", "an ONNX embedding model taking (batch, samples) audio")
        self.session = create_session(self.path, gpu=True)
        meta = self.session.get_modelmeta().custom_metadata_map
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.input_name = config.input_name or next(iter(inputs))
        if self.input_name not in inputs:
            raise EdgekdError(f"teacher 'onnx': input '{self.input_name}' not in the model; it has {list(inputs)}")
        self.input_rank = len(inputs[self.input_name].shape)
        if inputs[self.input_name].type != "tensor(float)" or not 2 <= self.input_rank <= 4:
            raise ModelError(f"{self.path}: input '{self.input_name}' is {inputs[self.input_name].type} of rank "
                             f"{self.input_rank}; an audio teacher takes float32 (batch, samples), or with channel "
                             "axes of size 1 before the samples")
        self.sample_rate = config.sample_rate or (int(meta["sample_rate"]) if "sample_rate" in meta else None)
        self.sample_rate = _require_rate(self.sample_rate, "onnx")
        fixed = inputs[self.input_name].shape[-1]
        self.input_samples = config.input_samples or (fixed if isinstance(fixed, int) else None)
        if self.input_samples is None and "window_seconds" in meta:
            self.input_samples = int(round(float(meta["window_seconds"]) * self.sample_rate))
        samples = self.input_samples or self.sample_rate
        try:
            self.dim = int(self._run(np.zeros((1, samples), np.float32)).shape[-1])
        except Exception as err:  # onnxruntime's own error types: wrong fixed shape, failing op
            raise ModelError(f"{self.path}: fails on a (1, {samples}) audio window ({first_line(err)}); check "
                             "teacher.input_samples and teacher.sample_rate") from None

    def _run(self, audio: np.ndarray) -> np.ndarray:
        feed = audio.reshape(audio.shape[0], *([1] * (self.input_rank - 2)), audio.shape[1])
        return self.session.run(None, {self.input_name: feed})[0].reshape(audio.shape[0], -1)

    def identity(self) -> dict:
        return {"teacher": "onnx", "weights": file_digest(self.path), "input_samples": self.input_samples}

    def to(self, device: torch.device) -> "OnnxTeacher":
        return self  # onnxruntime picked its provider at load

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        length = self.input_samples or audio.shape[1]
        return embed_in_segments(lambda x: torch.from_numpy(self._run(x.cpu().numpy())), audio.cpu(), length,
                                 self.config.batch_size)

    def deployable(self, window_seconds: float):
        return None  # already an ONNX file: `edgekd profile` it directly


class PrecomputedTeacher:
    """Embeddings computed elsewhere, looked up by (clip id, window start)."""

    embeds = True
    sample_rate = None

    def __init__(self, config: PrecomputedTeacherConfig):
        self.path = require_file(config.path, "precomputed", "a .npz with clip_ids, starts, embeddings or a .csv")
        ids, starts, vectors = _read_precomputed(self.path)
        _check_precomputed(self.path, ids, starts, vectors)
        self.rows = {(clip, round(float(start), 3)): index for index, (clip, start) in enumerate(zip(ids, starts))}
        self.vectors = vectors.astype(np.float32)
        self.dim = vectors.shape[1]

    def identity(self) -> dict:
        return {"teacher": "precomputed", "weights": file_digest(self.path)}

    def known_embeddings(self, clip_ids: list[str], starts: np.ndarray) -> np.ndarray:
        keys = [(clip, round(float(start), 3)) for clip, start in zip(clip_ids, starts)]
        missing = [key for key in keys if key not in self.rows]
        if missing:
            raise EdgekdError(f"{self.path}: no embedding for {len(missing)} of {len(keys)} windows, "
                              f"first: clip '{missing[0][0]}' at {missing[0][1]} s")
        return self.vectors[[self.rows[key] for key in keys]]

    def deployable(self, window_seconds: float):
        return None


def _read_precomputed(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return [str(c) for c in data["clip_ids"]], data["starts"], data["embeddings"]
        import csv

        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        header, body = rows[0], rows[1:]
        if header[:2] != ["clip_id", "start"]:
            raise ValueError("the CSV header must start with clip_id,start")
        return [r[0] for r in body], np.array([float(r[1]) for r in body]), np.array(
            [[float(v) for v in r[2:]] for r in body], dtype=np.float32)
    except (OSError, KeyError, ValueError, IndexError) as err:
        raise EdgekdError(f"{path}: cannot read precomputed embeddings ({err})") from None


def _check_precomputed(path: Path, ids: list[str], starts: np.ndarray, vectors: np.ndarray) -> None:
    """One row per (clip, start), each a finite vector: anything else would train the student on garbage."""
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        raise EdgekdError(f"{path}: embeddings must be 2-D (rows, dim); got shape {vectors.shape}")
    if not len(ids) == len(starts) == len(vectors):
        raise EdgekdError(f"{path}: {len(ids)} clip_ids, {len(starts)} starts and {len(vectors)} embedding rows; "
                          "give one of each per window")
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        raise EdgekdError(f"{path}: {len(bad)} embedding row(s) are NaN or infinite (first: clip '{ids[bad[0]]}' "
                          f"at {float(starts[bad[0]]):g} s)")
