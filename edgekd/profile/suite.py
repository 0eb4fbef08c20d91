"""`edgekd check`: several models × devices with budgets from `edgekd.yaml` or `[tool.edgekd]` in pyproject.toml,
and a regression gate against a baseline of earlier measurements."""

from __future__ import annotations

import json
from pathlib import Path

import tomllib
from pydantic import Field

from edgekd.errors import EdgekdError, first_line
from edgekd.files import write_json
from edgekd.profile.report import Check, ProfileReport, profile_model
from edgekd.schema import ByteSize, StrictModel, read_yaml, validate_section

GATED_METRICS = ("storage_bytes", "activation_bytes", "macs")


class ModelCheck(StrictModel):
    model: str
    devices: list[str] = Field(default_factory=list, description="device names or YAML paths")
    max_flash: ByteSize | None = None
    max_ram: ByteSize | None = None
    max_macs: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_latency_ms: float | None = Field(None, ge=0, allow_inf_nan=False)


class SuiteConfig(StrictModel):
    checks: list[ModelCheck] = Field(min_length=1)
    max_growth_percent: float = Field(5.0, ge=0, description="largest growth over the baseline that still passes")


def find_config(explicit: Path | None) -> tuple[Path, dict]:
    """The file given, else edgekd.yaml, else pyproject.toml's [tool.edgekd], in the working directory."""
    candidates = [explicit] if explicit else [Path("edgekd.yaml"), Path("pyproject.toml")]
    for path in candidates:
        if not path.is_file():
            continue
        if path.suffix != ".toml":
            return path, read_yaml(path, "CI config")
        try:
            raw = tomllib.loads(path.read_text()).get("tool", {}).get("edgekd")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise EdgekdError(f"{path}: cannot parse ({first_line(err)})") from None
        if raw is not None:
            return path, raw
        if explicit:
            raise EdgekdError(f"{path}: no [tool.edgekd] table")
    if explicit:
        raise EdgekdError(f"{explicit}: no such file")
    raise EdgekdError("no edgekd.yaml or [tool.edgekd] in pyproject.toml here; give a config file")


def load_suite(explicit: Path | None) -> tuple[Path, SuiteConfig]:
    path, raw = find_config(explicit)
    return path, validate_section(SuiteConfig, raw, str(path))


def run_suite(config: SuiteConfig, base: Path, runs: int, baseline: Path | None) -> list[ProfileReport]:
    """Profile every model on every device; paths are relative to the config file's folder."""
    previous = _read_baseline(baseline) if baseline else {}
    reports = []
    for entry in config.checks:
        model = (base / entry.model) if not Path(entry.model).is_absolute() else Path(entry.model)
        for device in entry.devices or [None]:
            report = profile_model(model, device, entry.max_flash, entry.max_ram, entry.max_macs,
                                   entry.max_latency_ms, latency_runs=runs)
            report.model = entry.model
            if baseline:
                report.checks += _growth_checks(report, previous.get(entry.model), config.max_growth_percent,
                                                baseline)
            reports.append(report)
    return reports


def _read_baseline(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EdgekdError(f"{path}: cannot read baseline ({first_line(err)})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise EdgekdError(f"{path}: a baseline maps each model to its figures; write one with --write-baseline")
    return data


def _growth_checks(report: ProfileReport, before: dict | None, percent: float, baseline: Path) -> list[Check]:
    if before is None:  # a growth gate with nothing to compare would pass whatever the model became
        raise EdgekdError(f"{baseline}: no figures for model '{report.model}'; record them with --write-baseline")
    factor = 1 + percent / 100
    return [Check(f"growth:{metric}", before[metric] * factor, getattr(report, metric),
                  f"{baseline} {before[metric]:g} +{percent:g}%") for metric in GATED_METRICS if metric in before]


def write_baseline(reports: list[ProfileReport], path: Path) -> None:
    data = {r.model: {metric: getattr(r, metric) for metric in GATED_METRICS} for r in reports}
    write_json(path, data)
