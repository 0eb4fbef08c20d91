"""Where shipped recipes and device profiles live, and where caches go."""

import os
from pathlib import Path

# The repository root: recipes/ and devices/ sit beside the package in a checkout or editable install.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shipped_dir(kind: str) -> Path:
    """`recipes` or `devices`: the folder in the working directory if present, else the one shipped with edgekd."""
    local = Path.cwd() / kind
    return local if local.is_dir() else PROJECT_ROOT / kind


def resolve_named_file(name_or_path: str, kind: str) -> Path | None:
    """A path as given, or NAME looked up as `<kind>/NAME.yaml`; None when neither exists."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for folder in (Path.cwd() / kind, PROJECT_ROOT / kind):
        candidate = folder / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    return None


def list_named_files(kind: str) -> list[Path]:
    seen: dict[str, Path] = {}
    for folder in (PROJECT_ROOT / kind, Path.cwd() / kind):
        if folder.is_dir():
            for file in sorted(folder.glob("*.yaml")):
                seen[file.stem] = file
    return [seen[name] for name in sorted(seen)]


def cache_root() -> Path:
    """Teacher-embedding caches are shared between runs: EDGEKD_CACHE_DIR, else ~/.cache/edgekd."""
    env = os.environ.get("EDGEKD_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "edgekd"
