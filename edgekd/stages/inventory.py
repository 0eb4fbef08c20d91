"""What ships, measured: the size of each student preset as `edgekd profile` would measure its FP32 export."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgekd.profile import GraphFacts
from edgekd.profile.modules import measure_module
from edgekd.students import PRESETS, build_student
from edgekd.students.base import trainable_parameters


@dataclass
class PresetSize:
    preset: str
    family: str
    dim: int
    trainable_parameters: int
    facts: GraphFacts

    @property
    def network_storage_bytes(self) -> int:
        """Storage without the front-end's fixed DFT and mel constants (what papers compare)."""
        return self.facts.storage_bytes - self.facts.frontend_bytes


def preset_sizes(sample_rate: int, seconds: float) -> list[PresetSize]:
    sizes = []
    for name, (config, dim) in PRESETS.items():
        config = config.model_copy(update={"sample_rate": sample_rate})
        model = build_student(config, dim).eval()
        facts = measure_module(model, torch.zeros(1, int(sample_rate * seconds)))
        sizes.append(PresetSize(name, config.name, dim, trainable_parameters(model), facts))
    return sizes
