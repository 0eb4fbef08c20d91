"""The methods registry, found rather than listed: every module of this package but this one is one method, named
as its module, whose `METHOD` is a `Method` subclass. Adding a method is adding its module (and its test).

Method modules import torch, so a recipe's `methods:` section imports only the methods it names."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekd.errors import RecipeError
from edgekd.schema import StrictModel, validate_section

METHOD_NAMES: tuple[str, ...] = tuple(sorted(
    module.name for module in pkgutil.iter_modules([str(Path(__file__).parent)]) if module.name != "registry"))


def method_class(name: str) -> type:
    """The `Method` subclass (edgekd.distillation) of the method named `name`."""
    return importlib.import_module(f"{__package__}.{name}").METHOD


@dataclass(frozen=True)
class MethodSettings:
    """The recipe's `methods:` section: each named method's validated config, in the methods' order."""

    configs: dict[str, StrictModel]

    def enabled(self) -> list[str]:
        return list(self.configs)

    def get(self, name: str) -> Any:
        return self.configs.get(name)

    def to_dict(self) -> dict[str, Any]:
        """Every method, null when off (as written to a run's recipe.yaml)."""
        return {name: self.configs[name].model_dump(mode="json") if name in self.configs else None
                for name in METHOD_NAMES}

    def build(self, context: Any) -> list:
        """The recipe's methods as `Method` objects (each given the `MethodContext`), in order."""
        return [method_class(name)(config, context) for name, config in self.configs.items()]


def validate_methods(raw: Any, source: str) -> MethodSettings:
    """Each named method's config, and the rules between methods, as one-line errors."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: key 'methods' must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(METHOD_NAMES))
    if unknown:
        raise RecipeError(f"{source}: unknown key 'methods.{unknown[0]}'; allowed keys: {', '.join(METHOD_NAMES)}")
    classes = sorted((method_class(name) for name, value in raw.items() if value is not None), key=lambda c: c.order)
    configs = {c.name: validate_section(c.config_model, raw[c.name], source, f"methods.{c.name}") for c in classes}
    for method in classes:
        for other, why in method.requires.items():
            if other not in configs:
                raise RecipeError(f"{source}: key 'methods': '{method.name}' {why}")
        for other, why in method.excludes.items():
            if other in configs:
                raise RecipeError(f"{source}: key 'methods': '{method.name}' {why}")
    return MethodSettings(configs)
