"""Students: the registry, its configs and presets (light to import); one module per family."""

from edgekd.students.configs import StudentConfig
from edgekd.students.registry import PRESETS, STUDENTS, build_student

__all__ = ["PRESETS", "STUDENTS", "StudentConfig", "build_student"]
