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


class PrecomputedTeacherConfig(StrictModel):
    name: Literal["precomputed"] = "precomputed"
    path: str | None = Field(None, description=".npz (clip_ids, starts, embeddings) or .csv (clip_id,start,v0,v1,…)")


class NoTeacherConfig(StrictModel):
    name: Literal["none"] = "none"


TeacherConfig = Union[CrepeConfig, L3Config, OnnxTeacherConfig, TorchScriptTeacherConfig, PythonTeacherConfig,
                      PrecomputedTeacherConfig, NoTeacherConfig]
