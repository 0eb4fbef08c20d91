"""Where shipped recipes and device profiles live, and where caches go."""

import os
from pathlib import Path

# The repository root: recipes/ and devices/ sit beside the package in a checkout or editable install.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resolve_named_file(name_or_path: str, kind: str) -> Path | None:
    """A file path as given, else NAME as a shipped `<kind>/NAME.yaml` (`recipes` or `devices`); None when neither
    exists. A file of the working directory is used only when named by its path, never found by name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = PROJECT_ROOT / kind / f"{name_or_path}.yaml"
    return shipped if shipped.is_file() else None


def list_named_files(kind: str) -> list[Path]:
    """The shipped files of `kind`, by name."""
    folder = PROJECT_ROOT / kind
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def cache_root() -> Path:
    """Teacher-embedding caches are shared between runs: EDGEKD_CACHE_DIR, else ~/.cache/edgekd."""
    env = os.environ.get("EDGEKD_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "edgekd"
