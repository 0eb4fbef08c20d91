"""Teachers: the registry and its configs (light to import); each teacher family lives in its own module."""

from edgekd.teachers.configs import TeacherConfig
from edgekd.teachers.registry import TEACHERS, build_teacher

__all__ = ["TEACHERS", "TeacherConfig", "build_teacher"]
