"""Device profiles (devices/*.yaml): memory budgets, CPU and runtime, each figure with its source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from edgekd.config import StrictModel, describe_validation_error
from edgekd.errors import EdgekdError
from edgekd.paths import list_named_files, resolve_named_file
from edgekd.units import parse_size


class DeviceProfile(StrictModel):
    name: str
    description: str
    cpu: str
    cores: int = Field(ge=1)
    clock_mhz: float = Field(gt=0)
    ram: int = Field(description="total RAM (SRAM) in bytes; sizes like 1MiB are accepted")
    flash: int = Field(description="total storage for the model (flash) in bytes")
    ram_reserve: int = Field(0, description="RAM kept for the runtime and application")
    flash_reserve: int = Field(0, description="flash kept for firmware, runtime and application")
    runtime: str
    dtypes: list[str]
    threads: int = Field(1, ge=1, description="threads for the latency measurement")
    source: str = Field(description="where the figures come from")

    @field_validator("ram", "flash", "ram_reserve", "flash_reserve", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        try:
            return parse_size(value)
        except EdgekdError as err:
            raise ValueError(str(err)) from None

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
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise EdgekdError(f"{path}: cannot read device profile ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise EdgekdError(f"{path}: a device profile must be a YAML mapping")
    try:
        return DeviceProfile.model_validate(raw)
    except ValidationError as err:
        raise EdgekdError(describe_validation_error(err, str(path), DeviceProfile)) from None


def shipped_devices() -> list[DeviceProfile]:
    return [_read_device(path) for path in list_named_files("devices")]
