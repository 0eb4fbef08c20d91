"""Typed recipe configuration, validated at load with one-line errors naming file, key and allowed values."""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekd.errors import RecipeError
from edgekd.paths import resolve_named_file


class StrictModel(BaseModel):
    """Unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowConfig(StrictModel):
    seconds: float = Field(1.0, gt=0, description="length of one embedding window")
    hop_seconds: float | None = Field(None, gt=0, description="hop between windows; defaults to the window length")


class ReductionConfig(StrictModel):
    method: Literal["pca", "umap", "none"] = "pca"
    dim: int = Field(64, ge=1, description="output dimension of the reduction φ (SEA: 64/128/256)")
    sample: Literal["random", "stratified", "loudness", "diverse"] = Field(
        "random", description="which training windows the reduction is fitted on (SEA: within 0.01 AUPRC)")
    sample_size: int | None = Field(None, ge=2, description="windows to fit on; default: every training window")


class TrainConfig(StrictModel):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    accumulate: int = Field(1, ge=1, description="micro-batches per optimiser step (gradient accumulation)")
    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["cosine", "plateau"] = Field(
        "cosine", description="cosine: warm-up then cosine decay; plateau: SEA's ×factor when validation stalls")
    warmup_epochs: int = Field(1, ge=0)
    plateau_patience: int = Field(5, ge=1, description="epochs without improvement before the rate drops")
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    early_stopping: int | None = Field(None, ge=1, description="stop after this many epochs without improvement")
    ema: float | None = Field(None, gt=0, lt=1, description="decay of an exponential moving average of the weights")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(True, description="bf16 autocast of the student's body on CUDA (the front-end stays FP32)")
    num_threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: torch's choice")


class ProbeConfig(StrictModel):
    max_iter: int = Field(2000, ge=1)
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic-regression probe")


# Top-level sections and, for those chosen from a registry, the registry that validates them.
_SECTIONS = ("name", "seed", "data", "window", "teacher", "reduction", "student", "loss", "train", "probe", "methods")


@dataclass(frozen=True)
class Recipe:
    name: str
    seed: int
    data: BaseModel
    window: WindowConfig
    teacher: BaseModel
    reduction: ReductionConfig
    student: BaseModel
    loss: BaseModel
    train: TrainConfig
    probe: ProbeConfig
    methods: BaseModel  # edgekd.methods.config.MethodsConfig
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved recipe (defaults filled in), as written to a run directory."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        for key in _SECTIONS[2:]:
            out[key] = getattr(self, key).model_dump(mode="json")
        return out

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _model_at(model: type[BaseModel], path: tuple) -> type[BaseModel]:
    """The (nested) config model that holds the key at `path`, so an unknown key lists its own siblings."""
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue  # a list index
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            break
        model = nested[0]
    return model


def describe_validation_error(err: ValidationError, source: str, model: type[BaseModel], section: str = "") -> str:
    """The first problem of a config file as one line naming the file, the key and what is allowed."""
    first = err.errors()[0]
    loc = ".".join(str(part) for part in (section, *first["loc"]) if part != "")
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(_model_at(model, first["loc"][:-1]).model_fields))
        return f"{source}: unknown key '{loc}'; allowed keys: {allowed}"
    if first["type"] == "missing":
        return f"{source}: missing key '{loc}'"
    if first["type"] == "value_error":  # a rule across keys: its message says what to change
        return f"{source}: key '{loc}': {first['msg'].removeprefix('Value error, ')}"
    return f"{source}: key '{loc}': {first['msg']} (got {first.get('input')!r})"


def _validate(model: type[BaseModel], raw: Any, source: str, section: str) -> BaseModel:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: key '{section}' must be a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise RecipeError(describe_validation_error(err, source, model, section)) from None


def _validate_registered(registry: dict, raw: Any, source: str, section: str, default: str | None) -> BaseModel:
    raw = dict(raw or {})
    name = raw.get("name", default)
    if name not in registry:
        allowed = ", ".join(sorted(registry))
        if name is None:
            raise RecipeError(f"{source}: missing key '{section}.name'; allowed: {allowed}")
        raise RecipeError(f"{source}: key '{section}.name': unknown {section} '{name}'; allowed: {allowed}")
    raw["name"] = name
    return _validate(registry[name].config, raw, source, section)


def recipe_from_dict(raw: Any, source: str) -> Recipe:
    # Registries are imported here so that config stays importable without torch-heavy modules.
    from edgekd.data import DATASETS
    from edgekd.losses import LOSSES
    from edgekd.methods.config import MethodsConfig
    from edgekd.students import STUDENTS
    from edgekd.teachers import TEACHERS

    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping of sections ({', '.join(_SECTIONS)})")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise RecipeError(f"{source}: unknown key '{unknown[0]}'; allowed keys: {', '.join(_SECTIONS)}")
    name = raw.get("name", Path(source).stem)
    seed = raw.get("seed", 0)
    if not isinstance(name, str):
        raise RecipeError(f"{source}: key 'name' must be a string")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise RecipeError(f"{source}: key 'seed' must be an integer, got {seed!r}")
    recipe = Recipe(
        name=name,
        seed=seed,
        data=_validate_registered(DATASETS, raw.get("data"), source, "data", None),
        window=_validate(WindowConfig, raw.get("window"), source, "window"),
        teacher=_validate_registered(TEACHERS, raw.get("teacher"), source, "teacher", None),
        reduction=_validate(ReductionConfig, raw.get("reduction"), source, "reduction"),
        student=_validate_registered(STUDENTS, raw.get("student"), source, "student", None),
        loss=_validate_registered(LOSSES, raw.get("loss"), source, "loss", "mse"),
        train=_validate(TrainConfig, raw.get("train"), source, "train"),
        probe=_validate(ProbeConfig, raw.get("probe"), source, "probe"),
        methods=_validate(MethodsConfig, raw.get("methods"), source, "methods"),
        source=source,
    )
    if recipe.teacher.name == "none":
        if recipe.methods.kd is None:
            raise RecipeError(f"{source}: teacher 'none' leaves nothing to learn from: add methods.kd (class labels) "
                              "and methods.teacher_free for autoencoder soft labels")
        needs_teacher = [name for name in ("label_revision", "selection", "difference_sampling", "relational_bank",
                                           "retrieval", "censor") if getattr(recipe.methods, name) is not None]
        if needs_teacher:
            raise RecipeError(f"{source}: methods.{needs_teacher[0]} works on the teacher's outputs; teacher 'none' "
                              "has none")
    return recipe


def load_recipe(name_or_path: str) -> Recipe:
    """Load a recipe by path or by the name of a shipped recipe (`demo` → recipes/demo.yaml)."""
    path = resolve_named_file(name_or_path, "recipes")
    if path is None:
        raise RecipeError(f"recipe '{name_or_path}' not found: give a YAML path or one of `edgekd recipes`")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}:{where} is not valid YAML ({getattr(err, 'problem', err)})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path}: cannot read recipe ({err})") from None
    return recipe_from_dict(raw, str(path))
