"""Device profiles (devices/*.yaml): memory budgets, CPU and runtime, each figure with its source."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgekd.errors import EdgekdError
from edgekd.formats.registry import RUNTIMES
from edgekd.paths import list_named_files, resolve_named_file
from edgekd.schema import ByteSize, StrictModel, load_yaml_model


class DeviceProfile(StrictModel):
    name: str
    description: str
    cpu: str
    cores: int = Field(ge=1)
    clock_mhz: float = Field(gt=0)
    ram: ByteSize = Field(description="total RAM (SRAM) in bytes; sizes like 1MiB are accepted")
    flash: ByteSize = Field(description="total storage for the model (flash) in bytes")
    ram_reserve: ByteSize = Field(0, description="RAM kept for the runtime and application")
    flash_reserve: ByteSize = Field(0, description="flash kept for firmware, runtime and application")
    runtime: str = Field(description="one of the runtimes edgekd knows the operators of (edgekd/formats/registry.py: each format's)")
    dtypes: list[Literal["float32", "float16", "bfloat16", "float64", "int8", "uint8", "int4", "uint4"]] = Field(
        description="weight types the device computes in (as numpy names them)")
    threads: int = Field(1, ge=1, description="threads for the latency measurement")
    source: str = Field(description="where the figures come from")

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, value: str) -> str:
        if value not in RUNTIMES:  # an unknown runtime would skip the operator check silently
            raise ValueError(f"unknown runtime '{value}'; known: {', '.join(sorted(RUNTIMES))}")
        return value

    @model_validator(mode="after")
    def _positive_budgets(self) -> DeviceProfile:
        for total, reserve in (("ram", "ram_reserve"), ("flash", "flash_reserve")):
            if getattr(self, total) <= 0 or getattr(self, reserve) >= getattr(self, total):
                raise ValueError(f"'{total}' must be positive and larger than '{reserve}' (a budget of "
                                 f"{getattr(self, total) - getattr(self, reserve)} B fits nothing)")
        return self

    @property
    def ram_budget(self) -> int:
        return self.ram - self.ram_reserve

    @property
    def flash_budget(self) -> int:
        return self.flash - self.flash_reserve


def load_device(name_or_path: str) -> DeviceProfile:
    path = resolve_named_file(name_or_path, "devices")
    if path is None:
        known = ", ".join(p.stem for p in list_named_files("devices"))
        raise EdgekdError(f"device '{name_or_path}' not found: give a YAML path or one of: {known}")
    return _read_device(path)


def _read_device(path: Path) -> DeviceProfile:
    return load_yaml_model(DeviceProfile, path, "device profile")


def shipped_devices() -> list[DeviceProfile]:
    return [_read_device(path) for path in list_named_files("devices")]
