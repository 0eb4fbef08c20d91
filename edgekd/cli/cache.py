"""`edgekd cache build`, `ls`, `info` and `rm`: the teacher-embedding caches."""

from __future__ import annotations

import json

import typer

from edgekd.cli.base import (
    JSON_LISTING,
    app,
    console,
    listing_output,
    progress_bars,
    report_line,
    user_errors,
)
from edgekd.errors import EdgekdError

cache_app = typer.Typer(help="See and clean the teacher-embedding caches.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("build")
@user_errors
def cache_build(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name"),
    strict: bool = typer.Option(False, help="stop at the first unusable audio file instead of skipping it"),
):
    """Run the recipe's teacher over its data and fill the cache, without training. Under `torchrun` each process
    computes its share of the rows."""
    from edgekd.recipe import load_recipe

    loaded = load_recipe(recipe)

    from edgekd.runtime import init_from_environment
    from edgekd.stages.distill import build_cache

    rank = init_from_environment()
    with progress_bars() as progress:
        task = progress.add_task("teacher inference (windows)", total=None, status="", visible=rank == 0)
        cached = build_cache(loaded, strict, lambda done, total: progress.update(task, completed=done, total=total))
    if rank == 0:
        if cached.discarded:
            report_line(f"removed {len(cached.discarded)} damaged shard(s) from {cached.directory}; their rows were "
                         "computed again", "[yellow]note:[/]")
        console.print(f"teacher cache {cached.directory}: {cached.computed} rows computed, {cached.reused} reused",
                      markup=False)


@cache_app.command("ls")
@user_errors
def cache_ls(verify: bool = typer.Option(False, help="check every shard's checksum (reads every cached byte)"),
             as_json: bool = JSON_LISTING):
    """List teacher-embedding caches: teacher, rows, size, and (with --verify) damaged shards."""
    from edgekd.cache import list_caches
    from edgekd.paths import cache_root
    from edgekd.units import format_bytes

    def state(entry) -> str:
        if not verify:
            return "not verified"
        return f"{len(entry.damaged)} damaged shard(s): rows not counted" if entry.damaged else "verified"

    records = [{"key": e.key, "teacher": e.identity.get("teacher", "?"), "rows": e.rows, "dim": e.dim,
                "size_bytes": e.size_bytes, "checksums": state(e), "directory": str(e.directory)}
               for e in list_caches(verify=verify)]
    listing_output(f"teacher caches in {cache_root() / 'teacher'}", records,
             {"key": "key", "teacher": "teacher", "rows": "rows", "dim": "dim", "size_bytes": "size",
              "checksums": "checksums"}, as_json, size_bytes=format_bytes)


@cache_app.command("info")
@user_errors
def cache_info(key: str = typer.Argument(..., help="cache key from `edgekd cache ls`")):
    """Show one cache's teacher identity, and verify every shard's checksum."""
    from edgekd.cache import list_caches

    entry = next((e for e in list_caches(verify=True) if e.key == key), None)
    if entry is None:
        raise EdgekdError(f"no teacher cache '{key}' (see `edgekd cache ls`)")
    console.print_json(json.dumps({"key": entry.key, "directory": str(entry.directory), "identity": entry.identity,
                                   "rows": entry.rows, "dim": entry.dim, "size_bytes": entry.size_bytes,
                                   "damaged_shards": entry.damaged}))


@cache_app.command("rm")
@user_errors
def cache_rm(keys: list[str] = typer.Argument(..., help="cache keys from `edgekd cache ls`")):
    """Delete teacher caches."""
    from edgekd.cache import remove_cache

    for key in keys:
        console.print(f"removed {remove_cache(key)}", markup=False)
