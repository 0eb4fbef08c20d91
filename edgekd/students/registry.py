"""Student registry: name → config model and builder (config, embedding_dim) → AudioStudent; and the named
configurations `edgekd students` reports (SEA's Table 1 students and a default of each family)."""

from __future__ import annotations

from edgekd.registry import Entry
from edgekd.students.configs import (
    DsCnnConfig,
    L3StudentConfig,
    MobileNetConfig,
    SeaCnnConfig,
    StudentConfig,
    TransformerConfig,
)

STUDENTS: dict[str, Entry] = {
    "sea_cnn": Entry(SeaCnnConfig, "edgekd.students.sea_cnn:build_sea_cnn",
                     "small SEA-style CNN on its own log-mel front-end"),
    "l3": Entry(L3StudentConfig, "edgekd.students.l3:build_l3_student",
                "L3-Net audio layout with per-block width divisors (SEA students 0-3)"),
    "dscnn": Entry(DsCnnConfig, "edgekd.students.dscnn:build_dscnn",
                   "depthwise-separable CNN for microcontrollers (MLPerf Tiny DS-CNN)"),
    "mobilenet": Entry(MobileNetConfig, "edgekd.students.mobilenet:build_mobilenet",
                       "MobileNetV2-style inverted residuals (Cortex-A)"),
    "transformer": Entry(TransformerConfig, "edgekd.students.transformer:build_transformer",
                         "small audio transformer on log-mel patches (attention distillation, Cortex-A/GPU)"),
}

PRESETS: dict[str, tuple[StudentConfig, int]] = {
    "sea-student-0": (L3StudentConfig(divisors=(1, 1, 1, 1)), 512),
    "sea-student-1": (L3StudentConfig(divisors=(2, 2, 2, 2)), 256),
    "sea-student-2": (L3StudentConfig(divisors=(2, 2, 2, 4)), 128),
    "sea-student-3": (L3StudentConfig(divisors=(2, 2, 2, 8)), 64),
    "dscnn": (DsCnnConfig(), 64),
    "mobilenet": (MobileNetConfig(), 64),
}


def build_student(config: StudentConfig, embedding_dim: int):
    """The AudioStudent the section names, randomly initialised from the global torch generator (build it under
    `edgekd.runtime.seeded` for a given seed)."""
    return STUDENTS[config.name].build(config, embedding_dim)
