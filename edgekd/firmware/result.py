"""What `edgekd deploy` found, as deploy.json holds it: the library's facts and, once built and run, the firmware's
own figures. `edgekd profile DEPLOY_DIR` judges them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekd import __version__
from edgekd.errors import EdgekdError

DEPLOY_JSON = "deploy.json"
MODEL_COPY = "model.tflite"  # the deployed file, beside its library


def latency_ms(instructions: int, cycles_per_instruction: float, clock_mhz: float) -> float:
    """What `instructions` take on a core at `clock_mhz`: QEMU counts instructions, the calibration makes cycles."""
    return instructions * cycles_per_instruction / (clock_mhz * 1e3)


@dataclass
class Measured:
    """What the firmware itself showed under QEMU."""

    windows: int
    flash: int  # text + rodata + data of the footprint image
    ram: int  # its data + bss (arena included) + the stack measured on the core
    text: int
    rodata: int
    data: int
    bss: int
    stack: int
    arena_used: int  # TFLM's allocator on the core
    init_instructions: int
    frontend_instructions: int  # per window, the most over the windows (deterministic: every window is alike)
    network_instructions: int
    outputs_identical: int  # windows whose output bytes equal TFLM's x86 interpreter's
    output_max_abs_diff: float  # the largest difference otherwise (dequantised)
    frontend_max_db_diff: float | None  # C log-mel against PyTorch's
    frontend_mean_cosine: float | None  # embeddings through the C front-end against through PyTorch's
    frontend_min_cosine: float | None
    student_mean_cosine: float | None  # the core's embedding of the audio against the FP32 PyTorch student's
    cycles_per_instruction: float
    frontend_ms: float
    network_ms: float

    @property
    def latency_ms(self) -> float:
        return self.frontend_ms + self.network_ms


@dataclass
class DeployResult:
    folder: Path
    device: str
    core: str
    board: str
    model: Path
    precision: str
    input: str  # audio (the front-end in the model), logmel (in C on the device) or tensor (filled by the caller)
    operators: list[str]
    arena_bytes: int  # the arena the library gives TFLM
    # what `edgekd profile MODEL.tflite --device` judges before any firmware exists: the file as flash, TFLM's arena as
    # its allocator plans it on this host (x86) as RAM
    tflm_x86_arena: int
    model_bytes: int
    clock_mhz: float
    budgets: dict
    measured: Measured | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        data = asdict(self) | {"folder": str(self.folder), "model": MODEL_COPY, "source": str(self.model),
                               "edgekd_version": __version__}
        if self.measured is not None:
            data["measured"]["latency_ms"] = self.measured.latency_ms
        return data


def read_deploy(folder: Path) -> dict:
    path = folder / DEPLOY_JSON
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise EdgekdError(f"{path}: not a deploy folder edgekd wrote ({err}); run `edgekd deploy` again") from None


