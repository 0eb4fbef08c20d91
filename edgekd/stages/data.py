"""`edgekd data build|info`: a recipe's audio decoded into the audio store (build), or what the store holds (info)."""

from __future__ import annotations

from typing import Callable

from edgekd.data.domain import DataSummary, load_domain_data, summarise
from edgekd.recipe import Recipe
from edgekd.teachers import build_teacher


def data_summary(recipe: Recipe, strict: bool = False, build: bool = True,
                 on_progress: Callable[[int, int], None] | None = None) -> DataSummary:
    teacher_rate = build_teacher(recipe.teacher).sample_rate
    return summarise(load_domain_data(recipe.domain(), teacher_rate, recipe.student.sample_rate, strict, on_progress,
                                      build))
