"""What every registry (datasets, teachers, students, losses) holds per name: a plain dict of these."""

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel


@dataclass(frozen=True)
class Entry:
    config: type[BaseModel]  # validates the recipe section that names this entry
    build: Callable  # what the section turns into: a loader, teacher, student or loss
    description: str
