"""Hugging Face audio models as teachers (`teacher: {name: huggingface, path: FOLDER_OR_ID}`) through transformers:
the model and its feature extractor from a folder `save_pretrained` wrote or from the local Hugging Face cache, never
downloaded (`local_files_only`). A window's embedding is one hidden state pooled over time, by default as each
architecture is commonly probed: the last layer's mean over frames (wav2vec 2.0, HuBERT, WavLM, data2vec; Whisper's
encoder over the frames that hold the window, not its 30 s of padding), AST's first token (its [CLS]), CLAP's
projected audio embedding (the joint audio-text space; no layer to choose)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgekd.errors import EdgekdError, ModelError, first_line
from edgekd.extras import require
from edgekd.teachers.base import ComputedTeacher, embed_in_segments, file_digest
from edgekd.teachers.configs import HuggingfaceConfig


@dataclass(frozen=True)
class Architecture:
    """How an architecture's window embedding is formed: which module runs (`model`, its `encoder`, or its
    projected audio features), the default pooling, and the feature extractor's longest input, if it has one."""

    runs: str  # "model" | "encoder" | "audio_features"
    pooling: str | None
    longest: str | None = None  # the feature extractor's attribute giving the most samples one call takes


WAVEFORM = Architecture("model", "mean")
ARCHITECTURES: dict[str, Architecture] = {
    "wav2vec2": WAVEFORM, "hubert": WAVEFORM, "wavlm": WAVEFORM, "data2vec-audio": WAVEFORM,
    "audio-spectrogram-transformer": Architecture("model", "first", "max_length"),
    "whisper": Architecture("encoder", "mean", "n_samples"),
    "clap": Architecture("audio_features", None, "nb_max_samples"),
}
NEEDED_FOR = "teacher 'huggingface'"


class HuggingfaceTeacher(ComputedTeacher):
    def __init__(self, config: HuggingfaceConfig):
        transformers = require("transformers", NEEDED_FOR, "huggingface")
        self.config, self.folder = config, _local_folder(config.path)
        try:
            model_config = transformers.AutoConfig.from_pretrained(self.folder, local_files_only=True)
            self.features = transformers.AutoFeatureExtractor.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as err:  # transformers' errors for a folder it cannot read
            raise EdgekdError(f"teacher.path {config.path}: transformers cannot read its config or feature extractor "
                              f"({first_line(err)})") from None
        self.model_type = model_config.model_type
        if self.model_type not in ARCHITECTURES:
            raise EdgekdError(f"teacher.path {config.path}: a '{self.model_type}' model; edgekd's Hugging Face teachers "
                              f"are {', '.join(ARCHITECTURES)}")
        self.architecture = ARCHITECTURES[self.model_type]
        if self.architecture.pooling is None and (config.layer is not None or config.pooling is not None):
            raise EdgekdError(f"teacher.layer / teacher.pooling: a {self.model_type} teacher's embedding is its "
                              "projected audio embedding; drop them")
        self.pooling = config.pooling or self.architecture.pooling
        try:
            self.net = transformers.AutoModel.from_pretrained(self.folder, local_files_only=True).eval()
        except (OSError, ValueError, RuntimeError) as err:
            raise ModelError(f"teacher.path {config.path}: cannot load the model's weights ({first_line(err)})") from None
        self.sample_rate = int(self.features.sampling_rate)
        longest = self.architecture.longest  # AST counts its longest input in 10 ms frames (Kaldi fbank)
        self.input_samples = None if longest is None else int(getattr(self.features, longest)) * (
            self.sample_rate // 100 if longest == "max_length" else 1)
        self.layer = self._checked_layer(config.layer)
        self.device = torch.device("cpu")
        self.dim = int(self.embed(torch.zeros(1, self.sample_rate)).shape[1])

    def _checked_layer(self, layer: int | None) -> int | None:
        if self.architecture.pooling is None:
            return None
        count = self.net.config.num_hidden_layers + 1  # the embeddings' output, then each layer's
        if layer is not None and not -count <= layer < count:
            raise EdgekdError(f"teacher.layer {layer}: {self.config.path} has hidden states 0…{count - 1} (0: the "
                              f"input embeddings; negative counts from the last)")
        return -1 if layer is None else layer

    def identity(self) -> dict:
        weights = sorted(p for p in Path(self.folder).iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
        return {"teacher": "huggingface", "model_type": self.model_type, "layer": self.layer, "pooling": self.pooling,
                "weights": {p.name: file_digest(p) for p in weights}, "input_samples": self.input_samples}

    def to(self, device: torch.device) -> HuggingfaceTeacher:
        self.device = device
        self.net.to(device)
        return self

    @torch.inference_mode()
    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        # a window longer than the feature extractor takes is cut into segments; a shorter one is its to pad
        length = min(self.input_samples or audio.shape[1], audio.shape[1])
        return embed_in_segments(self._run, audio.cpu(), length, self.config.batch_size).to(audio.device)

    def _run(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) → (batch, dim) through the feature extractor and the model, as transformers runs them."""
        inputs = self.features(list(audio.numpy().astype(np.float32)), sampling_rate=self.sample_rate,
                               return_tensors="pt")
        inputs = {key: value.to(self.device) for key, value in inputs.items()}
        runs = self.architecture.runs
        if runs == "audio_features":
            out = self.net.get_audio_features(**inputs)
            return (out if isinstance(out, torch.Tensor) else out.pooler_output).float().cpu()
        module = self.net.get_encoder() if runs == "encoder" else self.net
        hidden = module(**inputs, output_hidden_states=True).hidden_states[self.layer]
        if runs == "encoder":  # Whisper pads every input to 30 s: pool the frames that hold the window
            hidden = hidden[:, :math.ceil(audio.shape[1] / self.features.hop_length / 2)]
        return (hidden[:, 0] if self.pooling == "first" else hidden.mean(dim=1)).float().cpu()

    def deployable(self, window_seconds: float):
        return None  # edgekd does not export transformers models: profile the teacher with its own ONNX export


def _local_folder(path: str) -> str:
    """A folder save_pretrained wrote, or a model id's snapshot in the local Hugging Face cache."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise EdgekdError(f"teacher.path {path}: no config.json; give a folder `save_pretrained` wrote, or a model "
                              "id in the local Hugging Face cache")
        return str(folder)
    hub = require("huggingface_hub", NEEDED_FOR, "huggingface")
    try:
        return hub.snapshot_download(path, local_files_only=True)
    except Exception as err:  # noqa: BLE001 - the hub raises several types for an id it has not cached
        raise EdgekdError(f"teacher.path {path}: not a folder and not in the local Hugging Face cache "
                          f"({type(err).__name__}); edgekd never downloads: fetch it once where there is internet "
                          f"(`hf download {path}`) or `save_pretrained` it into a folder") from None
