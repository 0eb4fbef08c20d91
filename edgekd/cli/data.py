"""`edgekd data build` and `edgekd data info`: a recipe's audio in the audio store."""

from __future__ import annotations

import json

import typer

from edgekd.cli.base import (
    app,
    console,
    progress_bars,
    user_errors,
)

data_app = typer.Typer(help="Decode a recipe's audio into the audio store, and see what it holds.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


def _data_command(recipe: str, strict: bool, build: bool, as_json: bool) -> None:
    from edgekd.recipe import load_recipe

    loaded = load_recipe(recipe)

    from edgekd.runtime import init_from_environment
    from edgekd.stages.data import data_summary

    rank = init_from_environment()
    with progress_bars() as progress:
        task = progress.add_task("decoding audio into the store (new files)", total=None, status="",
                                 visible=rank == 0 and build)
        summary = data_summary(loaded, strict, build,
                               lambda done, total: progress.update(task, completed=done, total=total))
    if rank == 0:
        if as_json:
            print(json.dumps(summary.to_json(), indent=1))
        else:
            from edgekd.render.tables import data_table

            console.print(data_table(summary))


@data_app.command("build")
@user_errors
def data_build(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name"),
    strict: bool = typer.Option(False, help="stop at the first unusable audio file instead of skipping it"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
):
    """Decode, screen, mix to mono and resample every new or changed file once, into the audio store at the
    teacher's and the student's rates (what `distill` does first). Under `torchrun` each process decodes its share."""
    _data_command(recipe, strict, True, as_json)


@data_app.command("info")
@user_errors
def data_info(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
):
    """What the audio store holds for a recipe: clips, hours, windows per split, bytes, skipped files and why
    (decodes nothing)."""
    _data_command(recipe, False, False, as_json)
