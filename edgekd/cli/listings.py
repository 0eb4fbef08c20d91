"""The listings: `edgekd recipes`, `devices`, `teachers` and `students`."""

from __future__ import annotations

import json

import typer

from edgekd.cli.base import (
    JSON_LISTING,
    app,
    console,
    err_console,
    listing_output,
    user_errors,
)


@app.command()
@user_errors
def recipes(as_json: bool = JSON_LISTING):
    """List the shipped recipes."""
    from edgekd.paths import list_named_files
    from edgekd.recipe import recipe_from_dict
    from edgekd.schema import read_yaml

    records = []
    for path in list_named_files("recipes"):
        recipe = recipe_from_dict(read_yaml(path, "recipe"), str(path))
        records.append({"name": path.stem, "teacher": recipe.teacher.name, "student": recipe.student.name,
                        "data": recipe.data_names, "file": str(path)})
    listing_output("recipes", records, {"name": "name", "teacher": "teacher", "student": "student", "data": "data",
                                  "file": "file"}, as_json)


@app.command()
@user_errors
def devices(as_json: bool = JSON_LISTING):
    """List the shipped device profiles and their budgets."""
    from edgekd.profile.devices import shipped_devices
    from edgekd.units import format_bytes

    records = [{"name": d.name, "cpu": d.cpu, "cores": d.cores, "clock_mhz": d.clock_mhz,
                "ram_budget_bytes": d.ram_budget, "flash_budget_bytes": d.flash_budget, "runtime": d.runtime}
               for d in shipped_devices()]
    listing_output("devices (budgets: what is left for the model)", records,
             {"name": "name", "cpu": "cpu", "ram_budget_bytes": "RAM", "flash_budget_bytes": "flash",
              "runtime": "runtime"}, as_json,
             ram_budget_bytes=format_bytes, flash_budget_bytes=format_bytes)


@app.command()
@user_errors
def teachers(as_json: bool = JSON_LISTING):
    """List the teachers edgekd can distil from."""
    from edgekd.extras import install_command
    from edgekd.teachers import TEACHERS

    listing_output("teachers", [{"name": name, "description": entry.description,
                                 "needs": install_command(entry.extra) if entry.extra else None}
                                for name, entry in TEACHERS.items()],
                   {"name": "name", "description": "description", "needs": "needs installed"}, as_json)


@app.command()
@user_errors
def students(
    sample_rate: int = typer.Option(8000, help="input rate for the size figures"),
    seconds: float = typer.Option(1.0, help="window length for the size figures"),
    as_json: bool = typer.Option(False, "--json", help="print the families and presets as JSON"),
):
    """List the student families and SEA's Table 1 students, with parameters, storage and activation memory
    (measured by exporting each preset once per edgekd, torch and onnxruntime version, then read from the cache)."""
    from dataclasses import asdict

    from edgekd.render.tables import listing, presets_table
    from edgekd.stages.inventory import preset_sizes
    from edgekd.students import STUDENTS

    families = [{"name": name, "description": entry.description, "formats": list(entry.config.formats),
                 "int8_formats": list(entry.config.int8_formats)} for name, entry in STUDENTS.items()]
    with err_console.status("measuring each preset's export"):
        sizes = preset_sizes(sample_rate, seconds)
    if as_json:
        print(json.dumps({"families": families, "presets": [asdict(size) for size in sizes]}, indent=1))
        return
    for family in families:
        family["export"] = [kind if kind in family["int8_formats"] else f"{kind} (FP32)" for kind in family["formats"]]
    console.print(listing("student families", families, {"name": "name", "description": "description",
                                                         "export": "export formats"}))
    console.print(presets_table(sizes, sample_rate, seconds))
