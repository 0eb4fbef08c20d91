"""Student registry: name → config model and builder (config, embedding_dim) → nn.Module."""

from pydantic import BaseModel
from torch import nn

from edgekd.registry import Entry
from edgekd.students.families import (
    DsCnnConfig,
    L3StudentConfig,
    MobileNetConfig,
    build_dscnn,
    build_l3_student,
    build_mobilenet,
)
from edgekd.students.sea_cnn import SeaCnnConfig, build_sea_cnn
from edgekd.students.transformer import TransformerConfig, build_transformer

STUDENTS: dict[str, Entry] = {
    "sea_cnn": Entry(SeaCnnConfig, build_sea_cnn, "small SEA-style CNN on its own log-mel front-end"),
    "l3": Entry(L3StudentConfig, build_l3_student,
                       "L3-Net audio layout with per-block width divisors (SEA students 0-3)"),
    "dscnn": Entry(DsCnnConfig, build_dscnn, "depthwise-separable CNN for microcontrollers (MLPerf Tiny DS-CNN)"),
    "mobilenet": Entry(MobileNetConfig, build_mobilenet, "MobileNetV2-style inverted residuals (Cortex-A)"),
    "transformer": Entry(TransformerConfig, build_transformer,
                         "small audio transformer on log-mel patches (attention distillation, Cortex-A/GPU)"),
}


def build_student(config: BaseModel, embedding_dim: int) -> nn.Module:
    return STUDENTS[config.name].build(config, embedding_dim)
