"""The `edgekd` command line: thin commands that parse, call one stage, and render."""

from __future__ import annotations

import _thread
import functools
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from edgekd import __version__
from edgekd.configs import FrontendPlacement, Precision
from edgekd.errors import (
    ENVIRONMENT_ERRNOS,
    EXIT_BAD_INPUT,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_VIOLATION,
    EdgekdError,
    environment_error,
)
from edgekd.extras import install_command
from edgekd.formats.options import (
    ActivationType,
    CalibrationMethod,
    CortexM,
    ExportOptions,
    FrontendConstants,
    Int8Mode,
)
from edgekd.formats.registry import FORMATS
from edgekd.protocols import ProtocolName

app = typer.Typer(
    help="Distil a large pretrained embedding model into a small one that fits an edge device, and prove it fits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _formats_help() -> str:
    """Every format: what it writes, and the install command of the extra it needs."""
    return "comma-separated; " + "; ".join(
        f"{name}: {entry.description}" + (f" ({install_command(entry.extra)})" if entry.extra else "")
        for name, entry in FORMATS.items())


# What an interrupted command leaves, and how to go on.
_AFTER_INTERRUPT = {
    "distill": "the run continues from its last finished epoch with --resume",
    "cache_build": "finished cache shards are kept; run it again to compute the rest",
    "tune": "finished trials are kept; run it again to continue",
    "search": "finished trials are kept (study.db and trials/ in the output folder); run it again to continue",
    "export": "the previous export, if any, is as it was; run it again",
    "evaluate": "evaluation.json holds the datasets finished (before the first, the previous evaluation.json, if any, "
                "is as it was); run it again",
}


def _report_line(text: str, label: str = "[red]error:[/]") -> None:
    """The one way an error reaches the user: one line on stderr, user text printed as it is (never as markup)."""
    err_console.print(f"{label} {escape(text)}", highlight=False, soft_wrap=True)


def _user_errors(command):
    """Bad input is one line on stderr and an exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgekdError as err:
            _report_line(str(err))
            raise typer.Exit(err.exit_code) from None
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            return _interrupted(command.__name__)
        except Exception as err:  # a bug, not bad input: one line unless asked for the traceback
            if _signals_received:  # the interrupt, wrapped by a library (the exporter's tracer does)
                return _interrupted(command.__name__)
            if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:  # outside edgekd's own writers
                _report_line(str(environment_error(err.filename or "a file", err, doing="use")))
                raise typer.Exit(EXIT_BAD_INPUT) from None
            if os.environ.get("EDGEKD_DEBUG"):
                raise
            _report_line(f"{type(err).__name__}: {err} (EDGEKD_DEBUG=1 shows the traceback)", "[red]internal error:[/]")
            raise typer.Exit(EXIT_BUG) from None

    return wrapper


def _interrupted(command: str):
    """The interrupt as one line saying what the command leaves and how to go on."""
    _cancel_redeliveries()
    hint = _AFTER_INTERRUPT.get(command, "nothing was finished; run it again")
    _report_line(hint, "[yellow]interrupted:[/]")
    raise typer.Exit(EXIT_INTERRUPTED)


def _a_folder(path: Path | None) -> Path | None:
    """An --out that names an existing file, not a folder, is refused before any work (a usage error naming it)."""
    if path is not None and path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} is a file, not a folder; give a folder's path")
    return path


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[status]}"), console=err_console, transient=False)


@app.command()
@_user_errors
def distill(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name (see `edgekd recipes`)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=_a_folder,
                                      help="run directory [default: runs/<recipe name>]"),
    resume: bool = typer.Option(False, help="continue an interrupted run from its last checkpoint"),
    force: bool = typer.Option(False, help="start over in a run directory that already holds a run"),
    strict: bool = typer.Option(False, help="stop at the first unusable audio file instead of skipping it"),
):
    """Train a small student to approximate the teacher on the recipe's domain data."""
    from edgekd.recipe import load_recipe

    loaded = load_recipe(recipe)  # a bad recipe is answered before the stage (and torch) is imported

    from edgekd.render.tables import distill_table
    from edgekd.stages.distill import Hooks
    from edgekd.stages.distill import distill as run_distill

    run_dir = out or Path("runs") / loaded.name
    with _progress() as progress:
        tasks: dict[str, int] = {}

        logged = {"teacher": -1}  # off a terminal the bars are not drawn: a log line per tenth instead

        def teacher_progress(done: int, total: int) -> None:
            if "teacher" not in tasks:
                tasks["teacher"] = progress.add_task("teacher inference (windows)", total=total, status="")
            progress.update(tasks["teacher"], completed=done)
            tenth = done * 10 // max(total, 1)
            if not err_console.is_terminal and tenth > logged["teacher"]:
                logged["teacher"] = tenth
                progress.console.print(f"· teacher inference: {done:,}/{total:,} windows", markup=False)

        def step(epoch: int, done: int, total: int) -> None:
            if "train" not in tasks:
                tasks["train"] = progress.add_task("training (epochs)", total=loaded.train.epochs, status="")
            progress.update(tasks["train"], completed=epoch + done / total)

        def epoch(log) -> None:
            step(log.epoch - 1, 1, 1)
            score = (f"val cosine {log.val_cosine:.3f}" if log.val_cosine is not None else "") + (
                f"  val head accuracy {log.val_accuracy:.1%}" if log.val_accuracy is not None else "")
            progress.update(tasks["train"], status=f"loss {log.train_loss:.4g}  {score}")
            if not err_console.is_terminal:
                progress.console.print(f"· epoch {log.epoch}/{loaded.train.epochs} ({log.seconds:.1f} s): loss "
                                       f"{log.train_loss:.4g}  {score}".rstrip(), markup=False)

        result = run_distill(
            loaded, run_dir, resume=resume, force=force, strict=strict,
            hooks=Hooks(stage=lambda text: progress.console.print(f"[dim]· {escape(text)}[/]"),
                        teacher_progress=teacher_progress, step=step, epoch=epoch),
        )
    if result.metrics is None:
        return  # a torchrun worker other than rank 0: rank 0 reports
    console.print(distill_table(result.metrics))
    console.print(f"run written to [bold]{escape(str(run_dir))}[/]: student.pt, reduction.npz, metrics.json, "
                  "training_curves.png")
    console.print(f"next: edgekd export {run_dir}", markup=False)


@app.command()
@_user_errors
def evaluate(
    run_dir: Path = typer.Argument(..., help="run directory written by `edgekd distill`"),
    data: Optional[list[str]] = typer.Option(None, "--data", help="out-of-domain data: a folder of audio (labels "
                                             "from its labels.csv), a YAML with a data: section, or a recipe "
                                             "(repeatable)"),
    same_domain: Optional[list[str]] = typer.Option(None, "--same-domain", help="held-out data of the run's own "
                                                    "domain, given as --data is (repeatable)"),
    protocol: ProtocolName = typer.Option("window", help="how probes are trained and scored: window (every window), "
                                          "hear (clip = mean window embedding), sea (window MLP, clip = mean "
                                          "probability; 0.1 s hop); see the README"),
    logmel_baseline: bool = typer.Option(False, "--logmel-baseline", help="also probe the student front-end's "
                                         "log-mel statistics (a baseline any embedding should beat; about a third "
                                         "more probe fits)"),
):
    """Fidelity and downstream probes of a student beside its teacher (and a log-mel baseline when asked): on the
    run's test split, on held-out data of its domain, and out of domain."""
    from edgekd.render.tables import evaluation_table
    from edgekd.stages.evaluate import evaluate_run, report_path

    with err_console.status("embedding, probing") as status:
        def on_dataset(column: str) -> None:
            status.update(f"embedding, probing: {column}")
            if not err_console.is_terminal:  # the spinner is not drawn: a log line per column instead
                err_console.print(f"· evaluating {column}", markup=False)

        report = evaluate_run(run_dir, data or [], same_domain or [], protocol, on_dataset, logmel_baseline)
    console.print(evaluation_table(report))
    console.print(f"written to {report_path(run_dir, protocol)}", markup=False)


def _numbers(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise EdgekdError(f"{option} takes comma-separated numbers, e.g. 1,2,4,8; got '{text}'") from None


@app.command()
@_user_errors
def tune(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name"),
    temperature: str = typer.Option("1,2,4,8", help="temperatures T to try, comma-separated"),
    alpha: str = typer.Option("0.1,0.5,0.9", help="hard-label weights α to try, comma-separated"),
    epochs: Optional[int] = typer.Option(None, min=1, help="training epochs per trial [default: the recipe's]"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=_a_folder,
                                      help="folder [default: runs/<recipe name>-tune]"),
):
    """Search KD's temperature and hard-label weight on validation data; writes a tuned recipe."""
    from edgekd.recipe import load_recipe

    loaded = load_recipe(recipe)

    from edgekd.render.tables import tune_table
    from edgekd.stages.tune import tune_kd

    out_dir = out or Path("runs") / f"{loaded.name}-tune"
    temperatures, alphas = _numbers(temperature, "--temperature"), _numbers(alpha, "--alpha")
    with _progress() as progress:
        task = progress.add_task("KD grid (trials)", total=len(temperatures) * len(alphas), status="")

        def on_trial(done: int, total: int, trial) -> None:
            progress.update(task, completed=done, status=f"T {trial.temperature:g} α {trial.alpha:g}: "
                            f"val accuracy {trial.val_accuracy:.1%}")

        result = tune_kd(loaded, out_dir, temperatures, alphas, epochs, on_trial)
    console.print(tune_table(result))
    console.print(f"tuned recipe: {result.tuned_recipe} (edgekd distill {result.tuned_recipe})", markup=False)


@app.command()
@_user_errors
def search(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name (its search: section sets the space)"),
    device: str = typer.Option(..., "--device", "-d", help="device name (see `edgekd devices`) or YAML"),
    precision: Precision = typer.Option("int8", help="precision the candidates are measured and the chosen student "
                                        "exported at"),
    trials: Optional[int] = typer.Option(None, min=1, help="candidates to propose, those that cannot fit included "
                                         "[default: the recipe's search.trials, 24]"),
    hours: Optional[float] = typer.Option(None, min=0.001, help="stop proposing candidates after this long"),
    epochs: Optional[int] = typer.Option(None, min=1, help="most epochs per trained candidate [default: the "
                                         "recipe's]"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=_a_folder,
                                      help="folder [default: runs/<recipe name>-search-<device>]"),
    formats: str = typer.Option("onnx", "--format", help=f"comma-separated formats the chosen student is exported "
                                f"to, the last one profiled: {', '.join(FORMATS)}"),
    rank_on: Optional[str] = typer.Option(None, "--rank-on", help="held-out audio of the domain, given as evaluate's "
                                          "--same-domain is: trained candidates are ranked by fidelity on every "
                                          "window of it [default: the recipe's validation split]"),
    as_json: bool = typer.Option(False, "--json", help="print search.json's object"),
):
    """Find the student most faithful to the teacher that fits a device: candidates measured before training, those
    that fit distilled (stopped early when they lag), the best exported and profiled; exit 1 if none fits."""
    from edgekd.profile.devices import load_device
    from edgekd.recipe import load_recipe

    loaded, target = load_recipe(recipe), load_device(device)

    from edgekd.render.plots import plot_pareto
    from edgekd.render.tables import search_table
    from edgekd.stages.search import search as run_search

    out_dir = out or Path("runs") / f"{loaded.name}-search-{target.name}"
    options = ExportOptions(formats=tuple(name.strip() for name in formats.split(",")))  # checked before any work
    result = run_search(loaded, target, out_dir, precision, trials, hours, epochs, options.formats,
                        lambda line: err_console.print(f"· {line}", markup=False, highlight=False), rank_on)
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        raise typer.Exit(EXIT_OK)
    plot = plot_pareto(result, out_dir / "search.png")
    if as_json:
        console.print_json(json.dumps(result.to_json()))
    else:
        console.print(search_table(result))
        for note in result.notes:
            _report_line(note, "[yellow]note:[/]")
        console.print(f"{result.count('trained')} trained, {result.count('stopped early')} stopped early, "
                      f"{result.count('does not fit')} never trained (cannot fit), in {result.seconds:.0f} s",
                      markup=False)
        for path in (out_dir / "search.json", plot, *([Path(result.export)] if result.export else [])):
            console.print(f"wrote {path}", markup=False)
    if not result.fits:
        _report_line(f"{out_dir / 'search.json'}: no exported candidate fits {target.name}; widen the recipe's "
                     "search: space, lower the precision or give more --trials", "[red]does not fit:[/]")
    raise typer.Exit(EXIT_OK if result.fits else EXIT_VIOLATION)


@app.command()
@_user_errors
def export(
    run_dir: Path = typer.Argument(..., help="run directory written by `edgekd distill`"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=_a_folder,
                                      help="output folder [default: RUN_DIR/export]"),
    int8: Int8Mode = typer.Option("static", help="INT8 quantisation"),
    fp16: bool = typer.Option(True, help="also write an FP16 model (for GPU-class devices)"),
    calib: int = typer.Option(64, min=1, help="domain windows used to calibrate INT8"),
    calib_method: CalibrationMethod = typer.Option("minmax", help="INT8 calibration"),
    activations: ActivationType = typer.Option("uint8", help="INT8 activation type"),
    frontend: FrontendPlacement = typer.Option("include", help="include: the model takes raw audio; exclude: it "
                                               "takes log-mel"),
    frontend_constants: FrontendConstants = typer.Option("int8", help="INT8 file: store the DFT/mel int8 (less "
                                                         "flash, more RAM at run time) or fp32"),
    opset: int = typer.Option(ExportOptions.opset, min=17, help="ONNX opset"),
    min_cosine: float = typer.Option(0.99, help="gate: least mean embedding cosine to FP32 PyTorch"),
    max_accuracy_drop: float = typer.Option(1.0, help="gate: most probe-accuracy points lost vs FP32"),
    fallback: bool = typer.Option(True, help="keep the most sensitive layers FP32 when INT8 misses the gate"),
    formats: str = typer.Option("onnx", "--format", help=escape(_formats_help())),
    int8_output: bool = typer.Option(False, help="INT8 .tflite: int8 output (one scale for the embedding) instead of "
                                     "FP32"),
    cortex_m: CortexM = typer.Option("M4", help="INT8 .pte: the Cortex-M core its CMSIS-NN kernels target"),
):
    """Export the student to ONNX (FP32, INT8, FP16), TFLite Micro (FP32, INT8) and ExecuTorch (FP32, Cortex-M INT8),
    verify each against PyTorch; exit 1 if a gate fails."""
    from edgekd.render.tables import export_table
    from edgekd.stages.export import export_run

    options = ExportOptions(calib=calib, calib_method=calib_method, activations=activations, int8=int8, fp16=fp16,
                            frontend=frontend, frontend_constants=frontend_constants, opset=opset, min_cosine=min_cosine,
                            max_accuracy_drop=max_accuracy_drop, fallback=fallback,
                            formats=tuple(name.strip() for name in formats.split(",")), int8_output=int8_output,
                            cortex_m=cortex_m)
    with err_console.status("exporting, quantising and verifying"):
        result = export_run(run_dir, out or run_dir / "export", options)
    console.print(export_table(result))
    for note in result.notes:
        _report_line(note, "[yellow]note:[/]")
    for path in result.files:
        console.print(f"wrote {path}", markup=False)
    if not result.passed:
        _report_line("; ".join(f"{v.file}: {', '.join(v.missed)}" for v in result.variants if not v.passed),
                    "[red]accuracy gate failed:[/]")
    raise typer.Exit(EXIT_OK if result.passed else EXIT_VIOLATION)


@app.command()
@_user_errors
def profile(
    model: Path = typer.Argument(..., help="model file: .onnx, .tflite (TFLite Micro) or .pte (ExecuTorch)"),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="device name (see `edgekd devices`) or YAML"),
    max_flash: Optional[str] = typer.Option(None, help="storage budget, e.g. 512KB, 2MiB"),
    max_ram: Optional[str] = typer.Option(None, help="activation-memory budget, e.g. 256KB"),
    max_macs: Optional[float] = typer.Option(None, help="MAC budget per inference, e.g. 2e7"),
    max_latency_ms: Optional[float] = typer.Option(None, help="median latency budget on this host"),
    runs: int = typer.Option(20, min=0, help="timed runs for latency (0 skips latency and measured memory)"),
    raw: bool = typer.Option(False, "--raw", help="plan memory on the graph as exported, not onnxruntime's optimised one"),
    plot: Optional[Path] = typer.Option(None, help="write the memory timeline to this PNG"),
    junit: Optional[Path] = typer.Option(None, help="write one JUnit testcase per check to this XML file"),
    markdown: Optional[Path] = typer.Option(None, help="write a Markdown summary (for a pull-request comment)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (stable contract, see README)"),
):
    """Storage, activation memory, MACs and latency of an ONNX model, or a .tflite or .pte with its runtime's own
    memory figures; exit 1 if it exceeds a budget."""
    from edgekd.profile import profile_model
    from edgekd.units import parse_size

    report = profile_model(
        model, device,
        max_flash=parse_size(max_flash, "--max-flash") if max_flash else None,
        max_ram=parse_size(max_ram, "--max-ram") if max_ram else None,
        max_macs=max_macs, max_latency_ms=max_latency_ms, latency_runs=runs, raw=raw,
    )
    _render_reports([report], as_json, junit, markdown)
    if plot:
        from edgekd.render.ci import plot_timeline

        ram_limits = [c.limit for c in report.checks if c.name == "ram"]
        plot_timeline(report, plot, int(min(ram_limits)) if ram_limits else None)
        err_console.print(f"memory timeline written to {plot}", markup=False)
    raise typer.Exit(EXIT_OK if report.fits else EXIT_VIOLATION)


@app.command()
@_user_errors
def check(
    config: Optional[Path] = typer.Argument(None, help="edgekd.yaml or pyproject.toml [default: found here]"),
    baseline: Optional[Path] = typer.Option(None, help="fail when a model grew more than allowed since this file"),
    write_baseline: Optional[Path] = typer.Option(None, help="record today's figures as a baseline"),
    runs: int = typer.Option(10, min=0, help="timed runs for latency (0 skips it)"),
    junit: Optional[Path] = typer.Option(None, help="write one JUnit testcase per check to this XML file"),
    markdown: Optional[Path] = typer.Option(None, help="write a Markdown summary (for a pull-request comment)"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list of profile objects"),
):
    """Profile every model × device of a CI config; exit 1 if any budget or the growth gate fails."""
    from edgekd.profile.suite import load_suite, run_suite
    from edgekd.profile.suite import write_baseline as save_baseline

    path, suite = load_suite(config)
    reports = run_suite(suite, path.parent, runs, baseline)
    _render_reports(reports, as_json, junit, markdown)
    if write_baseline:
        save_baseline(reports, write_baseline)
        err_console.print(f"baseline written to {write_baseline}", markup=False)
    failed = [r for r in reports if not r.fits]
    if not as_json:
        console.print(f"{len(reports) - len(failed)} of {len(reports)} model × device checks pass")
    raise typer.Exit(EXIT_VIOLATION if failed else EXIT_OK)


def _render_reports(reports: list, as_json: bool, junit: Optional[Path], markdown: Optional[Path]) -> None:
    from edgekd.files import write_text
    from edgekd.render.ci import junit_xml
    from edgekd.render.ci import markdown as markdown_summary
    from edgekd.render.tables import profile_table, top_nodes_table

    if as_json:
        data = [r.to_json() for r in reports]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=2))
    else:
        for report in reports:
            console.print(profile_table(report))
            console.print(top_nodes_table(report))
            if report.checks:
                verdict = "[green]fits[/]" if report.fits else "[red]does not fit[/]"
                console.print(f"verdict: {verdict}" + (f" {report.device}" if report.device else ""))
    for report in reports:
        for violation in report.violations:
            _report_line(f"{report.model}: {violation.describe()}", "[red]over budget[/]")
    if junit:
        write_text(junit, junit_xml(reports))
    if markdown:
        write_text(markdown, markdown_summary(reports))


JSON_LISTING = typer.Option(False, "--json", help="print the listing as a JSON list of objects")


def _listing(title: str, records: list[dict], columns: dict[str, str], as_json: bool, **formats) -> None:
    """A listing as a table, or with --json as the records the table shows."""
    from edgekd.render.tables import listing

    if as_json:
        print(json.dumps(records, indent=1))
    else:
        console.print(listing(title, records, columns, formats))


@app.command()
@_user_errors
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
    _listing("recipes", records, {"name": "name", "teacher": "teacher", "student": "student", "data": "data",
                                  "file": "file"}, as_json)


@app.command()
@_user_errors
def devices(as_json: bool = JSON_LISTING):
    """List the shipped device profiles and their budgets."""
    from edgekd.profile.devices import shipped_devices
    from edgekd.units import format_bytes

    records = [{"name": d.name, "cpu": d.cpu, "cores": d.cores, "clock_mhz": d.clock_mhz,
                "ram_budget_bytes": d.ram_budget, "flash_budget_bytes": d.flash_budget, "runtime": d.runtime}
               for d in shipped_devices()]
    _listing("devices (budgets: what is left for the model)", records,
             {"name": "name", "cpu": "cpu", "ram_budget_bytes": "RAM", "flash_budget_bytes": "flash",
              "runtime": "runtime"}, as_json,
             ram_budget_bytes=format_bytes, flash_budget_bytes=format_bytes)


@app.command()
@_user_errors
def teachers(as_json: bool = JSON_LISTING):
    """List the teachers edgekd can distil from."""
    from edgekd.teachers import TEACHERS

    _listing("teachers", [{"name": name, "description": entry.description} for name, entry in TEACHERS.items()],
             {"name": "name", "description": "description"}, as_json)


@app.command()
@_user_errors
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


data_app = typer.Typer(help="Decode a recipe's audio into the audio store, and see what it holds.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


def _data_command(recipe: str, strict: bool, build: bool, as_json: bool) -> None:
    from edgekd.recipe import load_recipe

    loaded = load_recipe(recipe)

    from edgekd.runtime import init_from_environment
    from edgekd.stages.data import data_summary

    rank = init_from_environment()
    with _progress() as progress:
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
@_user_errors
def data_build(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name"),
    strict: bool = typer.Option(False, help="stop at the first unusable audio file instead of skipping it"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
):
    """Decode, screen, mix to mono and resample every new or changed file once, into the audio store at the
    teacher's and the student's rates (what `distill` does first). Under `torchrun` each process decodes its share."""
    _data_command(recipe, strict, True, as_json)


@data_app.command("info")
@_user_errors
def data_info(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
):
    """What the audio store holds for a recipe: clips, hours, windows per split, bytes, skipped files and why
    (decodes nothing)."""
    _data_command(recipe, False, False, as_json)


cache_app = typer.Typer(help="See and clean the teacher-embedding caches.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("build")
@_user_errors
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
    with _progress() as progress:
        task = progress.add_task("teacher inference (windows)", total=None, status="", visible=rank == 0)
        cached = build_cache(loaded, strict, lambda done, total: progress.update(task, completed=done, total=total))
    if rank == 0:
        if cached.discarded:
            _report_line(f"removed {len(cached.discarded)} damaged shard(s) from {cached.directory}; their rows were "
                         "computed again", "[yellow]note:[/]")
        console.print(f"teacher cache {cached.directory}: {cached.computed} rows computed, {cached.reused} reused",
                      markup=False)


@cache_app.command("ls")
@_user_errors
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
    _listing(f"teacher caches in {cache_root() / 'teacher'}", records,
             {"key": "key", "teacher": "teacher", "rows": "rows", "dim": "dim", "size_bytes": "size",
              "checksums": "checksums"}, as_json, size_bytes=format_bytes)


@cache_app.command("info")
@_user_errors
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
@_user_errors
def cache_rm(keys: list[str] = typer.Argument(..., help="cache keys from `edgekd cache ls`")):
    """Delete teacher caches."""
    from edgekd.cache import remove_cache

    for key in keys:
        console.print(f"removed {remove_cache(key)}", markup=False)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="print the version and exit")):
    if version:
        console.print(f"edgekd {__version__}")
        raise typer.Exit()


# typer's usage errors (bad flag, bad choice, missing argument) as one class; typer re-exports only BadParameter
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


_signals_received: list[int] = []
_redeliveries: list[threading.Timer] = []
REDELIVERY_SECONDS = 0.05


def _interrupt(signum, frame):
    _signals_received.append(signum)
    raise KeyboardInterrupt


def _unraisable(unraisable) -> None:
    """An interrupt raised where Python cannot raise it (inside a garbage-collection callback, such as the one JAX
    registers) would be printed as "Exception ignored" and lost: it is delivered again a moment later instead, once
    the callback has returned. Anything else is reported as Python reports it."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _signals_received:
        if not any(timer.is_alive() for timer in _redeliveries):
            _redeliveries.append(threading.Timer(REDELIVERY_SECONDS, _thread.interrupt_main, (_signals_received[-1],)))
            _redeliveries[-1].start()
        return
    sys.__unraisablehook__(unraisable)


def _cancel_redeliveries() -> None:
    """Once an interrupt has been answered, none delivered again may reach what runs next."""
    for timer in _redeliveries:
        timer.cancel()
    _redeliveries.clear()


def main() -> None:
    """Usage errors are one line naming the flag (exit 2), like every other error. SIGINT always interrupts (a
    shell starts a script's background jobs with it ignored) and SIGTERM, as a cancelled CI job sends, interrupts
    the same way, so that every command cleans up and exits 130."""
    if len(sys.argv) == 1:
        app()  # no arguments: the help
    _signals_received.clear()
    handlers = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    sys.unraisablehook = _unraisable
    try:
        code = app(standalone_mode=False)
    except _USAGE_ERROR as err:
        command = err.ctx.command_path if err.ctx else "edgekd"
        message = err.format_message().replace("Value error, ", "")  # pydantic's prefix on typer's choice errors
        _report_line(f"{message} (see `{command} --help`)")
        code = EXIT_BAD_INPUT
    except typer.Abort:
        code = EXIT_INTERRUPTED
    finally:
        _cancel_redeliveries()
        sys.unraisablehook = sys.__unraisablehook__
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    sys.exit(code or EXIT_OK)


def run() -> None:
    """The `edgekd` executable (and `python -m edgekd`): `main()`, after which an interrupt that arrives while Python
    shuts down (torch and JAX take a while) changes nothing: the finished command's exit code stands, where Python's
    own handlers would have died of the signal (exit 143, or -2) with no line."""
    try:
        main()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
