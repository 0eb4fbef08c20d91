"""Typed configuration: strict models, a byte-size type, and reading YAML into a model with one-line errors that
name the file, the key and what is allowed. Plain pydantic: validating a config imports neither torch nor numpy."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    model_validator,
)

from edgekd.errors import EdgekdError, RecipeError, first_line
from edgekd.units import parse_size

Model = TypeVar("Model", bound=BaseModel)


class StrictModel(BaseModel):
    """Unknown keys are errors, not silently ignored; YAML's true/false is not taken as a number (pydantic would
    read `epochs: true` as 1); .inf and .nan are not numbers any setting takes (`lr: 1e309` is infinity)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            for key, value in raw.items():
                field = cls.model_fields.get(key)
                if isinstance(value, bool) and field is not None and not _accepts_bool(field.annotation):
                    raise ValueError(f"'{key}' takes {_type_name(field.annotation)}, not {str(value).lower()}")
        return raw


def _accepts_bool(annotation: Any) -> bool:
    return annotation in (bool, Any) or any(_accepts_bool(arg) for arg in typing.get_args(annotation))


def _type_name(annotation: Any) -> str:
    return {int: "a whole number", float: "a number", str: "text"}.get(annotation, "a value of another type")


def _byte_size(value: Any) -> Any:
    try:
        return parse_size(value) if value is not None else None
    except EdgekdError as err:
        raise ValueError(str(err)) from None


# A size as users write it in YAML (512KB, 1MiB, 2MB or a byte count), validated to bytes.
ByteSize = Annotated[int, BeforeValidator(_byte_size)]


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
    if first["type"] == "value_error":  # a rule across keys: its message says what to change (and names them)
        rule = first["msg"].removeprefix("Value error, ")
        return f"{source}: key '{loc}': {rule}" if loc else f"{source}: {rule}"
    return f"{source}: key '{loc}': {first['msg']} (got {first.get('input')!r})"


def validate_section(model: type[Model], raw: Any, source: str, section: str = "") -> Model:
    """`raw` (a mapping, or None for all defaults) as `model`, or one RecipeError line."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where = f"key '{section}'" if section else "the file"
        raise RecipeError(f"{source}: {where} must be a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise RecipeError(describe_validation_error(err, source, model, section)) from None


def read_yaml(path: Path, what: str) -> Any:
    """The parsed YAML of `path`; unreadable files and syntax errors are one line naming the file (and line)."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}:{where} is not valid YAML ({getattr(err, 'problem', None) or first_line(err)})") \
            from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path}: cannot read {what} ({first_line(err)})") from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise RecipeError(f"{path}: nested too deeply to be {what}") from None
    except ValueError as err:  # a number Python will not convert (over 4,300 digits)
        raise RecipeError(f"{path}: a value no {what} holds ({first_line(err, 80)})") from None


def load_yaml_model(model: type[Model], path: Path, what: str) -> Model:
    return validate_section(model, read_yaml(path, what), str(path))
