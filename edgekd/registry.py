"""What every registry (datasets, teachers, students, losses) holds per name: a plain dict of these.

The config model is imported with the registry (it is plain pydantic, so validating a recipe needs neither torch
nor numpy); the builder is named as `module:function` and imported on first use."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Entry:
    config: type[BaseModel]  # validates the recipe section that names this entry
    builder: str  # "package.module:function": what the section turns into (a loader, teacher, student or loss)
    description: str
    extra: str | None = None  # the optional dependencies (pyproject's extra) it needs, if any

    def build(self, *args: Any) -> Any:
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)(*args)
