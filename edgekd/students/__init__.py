"""Student registry: name → config model and builder (config, embedding_dim) → nn.Module."""

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel
from torch import nn

from edgekd.students.sea_cnn import SeaCnn, SeaCnnConfig


@dataclass(frozen=True)
class StudentEntry:
    config: type[BaseModel]
    build: Callable[[BaseModel, int], nn.Module]
    description: str


STUDENTS: dict[str, StudentEntry] = {
    "sea_cnn": StudentEntry(SeaCnnConfig, SeaCnn, "small SEA-style CNN on its own log-mel front-end"),
}


def build_student(config: BaseModel, embedding_dim: int) -> nn.Module:
    return STUDENTS[config.name].build(config, embedding_dim)
