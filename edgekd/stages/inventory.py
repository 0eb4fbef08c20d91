"""What ships, measured: the size of each student preset as `edgekd profile` would measure its FP32 export, once
per input size and software version (exporting all six takes 10-30 s), then read from the cache."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import onnxruntime
import torch

from edgekd import __version__
from edgekd.files import cached_json, content_key, source_digest
from edgekd.paths import cache_root
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
    configs = {name: (config.model_copy(update={"sample_rate": sample_rate}), dim)
               for name, (config, dim) in PRESETS.items()}
    # everything the figures depend on: the presets, the input, and the code that builds and measures them (edgekd's
    # own source too: its version number stays while it changes)
    key = content_key({
        "presets": {name: [config.model_dump(mode="json"), dim] for name, (config, dim) in configs.items()},
        "samples": int(sample_rate * seconds), "versions": [__version__, torch.__version__, onnxruntime.__version__],
        "source": source_digest(),
    })

    def measure() -> list[dict]:
        sizes = []
        for name, (config, dim) in configs.items():
            model = build_student(config, dim).eval()
            facts = measure_module(model, torch.zeros(1, int(sample_rate * seconds)))
            sizes.append(asdict(PresetSize(name, config.name, dim, trainable_parameters(model), facts)))
        return sizes

    return cached_json(cache_root() / "presets" / f"{key}.json", measure, lambda entries: [
        PresetSize(**entry | {"facts": GraphFacts(**entry["facts"])}) for entry in entries])
