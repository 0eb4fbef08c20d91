"""Distillation methods of the research line, as recipe options (`methods:`), on top of plain SEA: one module each."""

from edgekd.methods.registry import (
    METHOD_NAMES,
    MethodSettings,
    method_class,
    validate_methods,
)

__all__ = ["METHOD_NAMES", "MethodSettings", "method_class", "validate_methods"]
