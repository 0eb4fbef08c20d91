"""A recipe: the configuration's sections (edgekd/configs.py) and every registry's configs composed into one
`Recipe`, validated at load with one-line errors naming file, key and allowed values. Only the commands and the run
directory read it; they hand each module the part it needs (`Recipe.domain()`, a section, a `MethodContext`).

Only plain config models are imported here, so a bad recipe is answered before torch is imported; the `methods:`
section is validated last and imports just the methods it names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edgekd.configs import (
    ProbeConfig,
    ReductionConfig,
    SearchConfig,
    TrainConfig,
    WindowConfig,
)
from edgekd.data import DATASETS, DataConfig
from edgekd.data.configs import Domain
from edgekd.errors import EdgekdError, RecipeError
from edgekd.files import content_key
from edgekd.losses import LOSSES, LossConfig
from edgekd.methods import MethodSettings, method_class, validate_methods
from edgekd.paths import resolve_named_file
from edgekd.registry import Entry
from edgekd.schema import read_yaml, validate_section
from edgekd.students import STUDENTS, StudentConfig
from edgekd.teachers import TEACHERS, TeacherConfig
from edgekd.units import shown

SECTIONS = ("name", "seed", "data", "window", "teacher", "reduction", "student", "loss", "train", "probe", "methods",
            "search")
CONFIG_SECTIONS = ("window", "teacher", "reduction", "student", "loss", "train", "probe")


@dataclass(frozen=True)
class Recipe:
    name: str
    seed: int
    data: tuple[DataConfig, ...]  # one or several datasets, read as one (their clips side by side)
    window: WindowConfig
    teacher: TeacherConfig
    reduction: ReductionConfig
    student: StudentConfig
    loss: LossConfig
    train: TrainConfig
    probe: ProbeConfig
    methods: MethodSettings
    source: str
    search: SearchConfig | None = None  # read by `edgekd search` only: a run's recipe never holds it

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved recipe (defaults filled in), as written to a run directory."""
        datasets = [config.model_dump(mode="json") for config in self.data]
        # one dataset is written as its mapping, as recipes give it (and as digests were taken before lists)
        out: dict[str, Any] = {"name": self.name, "seed": self.seed,
                               "data": datasets[0] if len(datasets) == 1 else datasets}
        for key in CONFIG_SECTIONS:
            out[key] = getattr(self, key).model_dump(mode="json")
        if self.train.qat is None:  # absent, as before it existed: the digests of recipes without it are unchanged
            del out["train"]["qat"]
        out["methods"] = self.methods.to_dict()
        if self.search is not None:
            out["search"] = self.search.model_dump(mode="json", exclude_none=True)
        return out

    def domain(self) -> Domain:
        """The recipe's data as the data stage takes it."""
        return Domain(self.data, self.window, self.seed, self.source)

    @property
    def data_names(self) -> str:
        return " + ".join(config.name for config in self.data)

    def digest(self) -> str:
        return content_key(self.to_dict(), 16)


def _validate_registered(registry: dict[str, Entry], raw: Any, source: str, section: str,
                         default: str | None) -> BaseModel:
    raw = dict(raw or {})
    name = raw.get("name", default)
    if name not in registry:
        allowed = ", ".join(sorted(registry))
        if name is None:
            raise RecipeError(f"{source}: missing key '{section}.name'; allowed: {allowed}")
        raise RecipeError(f"{source}: key '{section}.name': unknown {section.split('[')[0]} '{name}'; allowed: "
                          f"{allowed}")
    raw["name"] = name
    return validate_section(registry[name].config, raw, source, section)


def _datasets(raw: Any, source: str) -> tuple[BaseModel, ...]:
    """`data:` as one dataset's mapping, or a list of them (e.g. unlabelled domain audio beside a labelled set)."""
    if not isinstance(raw, list):
        return (_validate_registered(DATASETS, raw, source, "data", None),)
    if not raw:
        raise RecipeError(f"{source}: key 'data' is an empty list; give one dataset's mapping or a list of them")
    datasets = tuple(_validate_registered(DATASETS, entry, source, f"data[{index}]", None)
                     for index, entry in enumerate(raw))
    for index, config in enumerate(datasets):
        if config in datasets[:index]:
            raise RecipeError(f"{source}: key 'data[{index}]' repeats data[{datasets.index(config)}]; each dataset "
                              "once, or its clips would count twice")
    return datasets


SEED_LIMIT = 2**32  # numpy, torch and Python's random all take seeds below it


def _scalar(raw: dict, key: str, kind: type, default: Any, source: str) -> Any:
    value = raw.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RecipeError(f"{source}: key '{key}' must be {'a string' if kind is str else 'an integer'}, "
                          f"got {value!r}")
    if kind is int and not 0 <= value < SEED_LIMIT:
        raise RecipeError(f"{source}: key '{key}' must be from 0 to {SEED_LIMIT - 1:,}, got {shown(value)}")
    return value


def recipe_from_dict(raw: Any, source: str) -> Recipe:
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping of sections ({', '.join(SECTIONS)})")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise RecipeError(f"{source}: unknown key '{unknown[0]}'; allowed keys: {', '.join(SECTIONS)}")
    sections = dict(
        name=_scalar(raw, "name", str, Path(source).stem, source),
        seed=_scalar(raw, "seed", int, 0, source),
        data=_datasets(raw.get("data"), source),
        window=validate_section(WindowConfig, raw.get("window"), source, "window"),
        teacher=_validate_registered(TEACHERS, raw.get("teacher"), source, "teacher", None),
        reduction=validate_section(ReductionConfig, raw.get("reduction"), source, "reduction"),
        student=_validate_registered(STUDENTS, raw.get("student"), source, "student", None),
        loss=_validate_registered(LOSSES, raw.get("loss"), source, "loss", "mse"),
        train=validate_section(TrainConfig, raw.get("train"), source, "train"),
        probe=validate_section(ProbeConfig, raw.get("probe"), source, "probe"),
    )
    methods = validate_methods(raw.get("methods"), source)  # last: the methods it names import torch
    if sections["teacher"].name == "none":
        if methods.get("kd") is None:
            raise RecipeError(f"{source}: teacher 'none' leaves nothing to learn from: add methods.kd (class labels) "
                              "and methods.teacher_free for autoencoder soft labels")
        needs_teacher = [name for name in methods.enabled() if method_class(name).needs_teacher]
        if needs_teacher:
            raise RecipeError(f"{source}: methods.{needs_teacher[0]} works on the teacher's outputs; teacher 'none' "
                              "has none")
    search = validate_section(SearchConfig, raw["search"], source, "search") if "search" in raw else None
    return Recipe(**sections, methods=methods, source=source, search=search)


# Keys that earlier versions wrote into a run's recipe.yaml and that were removed since, with what made them
# redundant: a run folder kept from before still reads (its recipe is read without them; nothing else changes).
REMOVED_DATA_KEYS = {
    "sample_rate": "e032d78, 2026-11-24: the audio store decodes each clip at the teacher's and the student's rates",
}


def without_removed_keys(raw: Any) -> Any:
    """A run's recipe as this version reads it: the removed keys dropped where the dataset no longer has them."""
    if not isinstance(raw, dict):
        return raw

    def current(entry: Any) -> Any:
        config = DATASETS[entry["name"]].config if isinstance(entry, dict) and entry.get("name") in DATASETS else None
        if config is None:
            return entry
        return {key: value for key, value in entry.items()
                if key not in REMOVED_DATA_KEYS or key in config.model_fields}

    data = raw.get("data")
    return raw | {"data": [current(entry) for entry in data] if isinstance(data, list) else current(data)} \
        if data is not None else raw


@dataclass(frozen=True)
class EvaluationData:
    """Data `edgekd evaluate --data` reads: only its datasets and, when given, its windows."""

    data: tuple[BaseModel, ...]
    window: WindowConfig | None  # None: the run's own
    source: str


def load_evaluation_data(spec: str, option: str = "--data") -> EvaluationData:
    """A folder of audio (its labels.csv, when there, gives the labels), a YAML with a `data:` section and optionally
    `window:`, or a whole recipe, whose other sections are not used; `option` is what gave it."""
    given = _evaluation_data(spec, option)
    for config in given.data:  # listed now: a folder without audio is refused before any work, naming the flag
        try:
            DATASETS[config.name].build(config, 0)
        except EdgekdError as err:
            raise RecipeError(f"{option} {spec}: {err}") from None
    return given


def _evaluation_data(spec: str, option: str) -> EvaluationData:
    folder = Path(spec).expanduser()
    if folder.is_dir():
        labels = folder / "labels.csv"
        config = {"name": "folder", "root": str(folder)} | ({"labels_csv": str(labels)} if labels.is_file() else {})
        return EvaluationData(_datasets(config, spec), None, spec)
    path = resolve_named_file(spec, "recipes")
    if path is None:
        raise RecipeError(f"{option} {spec}: not a folder of audio, a YAML file or a shipped recipe")
    raw = read_yaml(path, "recipe")
    if isinstance(raw, dict) and set(raw) <= {"name", "data", "window"}:
        if "data" not in raw:
            raise RecipeError(f"{path}: missing key 'data' (the datasets to evaluate on)")
        window = validate_section(WindowConfig, raw["window"], str(path), "window") if "window" in raw else None
        return EvaluationData(_datasets(raw["data"], str(path)), window, str(path))
    recipe = recipe_from_dict(raw, str(path))
    return EvaluationData(recipe.data, recipe.window, str(path))


def load_recipe(name_or_path: str) -> Recipe:
    """Load a recipe by path or by the name of a shipped recipe (`demo` → the shipped recipes/demo.yaml)."""
    path = resolve_named_file(name_or_path, "recipes")
    if path is None:
        raise RecipeError(f"recipe '{name_or_path}' not found: give a YAML path or one of `edgekd recipes`")
    return recipe_from_dict(read_yaml(path, "recipe"), str(path))
