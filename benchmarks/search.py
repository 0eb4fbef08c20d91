"""`edgekd search` on the demo recipe for microcontrollers, beside the shipped presets that fit the same device.

For each device: `edgekd search demo --device DEVICE` as a user runs it (wall time; candidates trained, stopped
early, and never trained because they cannot fit; the chosen student's INT8 export profiled against the device by
`edgekd profile --device`). Then every shipped preset whose embedding has the recipe's dimension is measured at
INT8 with its front-end inside and outside the model; each preset that fits one way is distilled on the same recipe
(same seed, data and epochs), exported at INT8 that way and profiled: the best of them stands beside the search's
choice. The demo's validation and test splits are 80 windows each, too few to tell students a point of cosine apart,
so the same search is run again with `--rank-on` 1,000 clips of the domain no run has heard (it trains nothing more:
its trained candidates are ranked on those clips), and both choices and every fitting preset are compared on another
1,000 such clips (`edgekd evaluate --same-domain`, as a user holds out recordings) beside the test split. Held-out
clips come from the recipe's synthetic generator with other seeds, written as WAV files. Each device's Pareto plot
is copied to benchmarks/results/search-DEVICE.png for the README.

    python benchmarks/search.py [--devices nrf52840 stm32h7] [--recipe demo] [--held-out-clips 100] [--work DIR]

On real audio (results: search-esc10): `--data ESC-10` searches benchmarks/real.py's recipe for it (the published
SEA-64 teacher, the folds' audio without labels: folds 1-3 train, 4 validation, 5 test) for each device, its
trained candidates ranked with `--rank-on` on fold 5's clips (heard by no training), as a user holds out a fold.
The proven student, and each shipped preset that fits (distilled on the same recipe, exported and profiled the same
way), are then evaluated under the `sea` protocol (5-fold, `--logmel-baseline`), beside SEA-64 itself and the
log-mel statistics from the same evaluation.

    python benchmarks/search.py --data ESC-10 --devices nrf52840 [--trials 16] [--epochs 30]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import soundfile
import yaml
from real import TEACHERS, data_section
from real import recipe as real_recipe
from results import RESULTS, ROOT, save

from edgekd.data.synthetic import synthetic_urban_clips
from edgekd.profile.devices import load_device
from edgekd.recipe import load_recipe, recipe_from_dict
from edgekd.stages.search import measure
from edgekd.students import PRESETS
from edgekd.teachers import build_teacher


def _edgekd(*args: str, work: Path) -> tuple[int, float, str]:
    """Exit code, seconds and output of one `edgekd` command, run as a user runs it."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgekd", *args], capture_output=True, text=True, cwd=work,
                          env=dict(os.environ, COLUMNS="160"))
    return done.returncode, time.perf_counter() - began, done.stdout + done.stderr


def _held_out(recipe_name: str, clips_per_class: int, work: Path, seed_offset: int) -> Path:
    """A folder of WAV clips of the recipe's domain that no run has heard: its synthetic generator with another seed
    (the runs' clips come from the recipe's own), unlabelled, so that `evaluate` measures fidelity alone."""
    recipe = load_recipe(recipe_name)
    if [config.name for config in recipe.data] != ["synthetic_urban"]:
        raise SystemExit(f"{recipe_name}: held-out clips come from the synthetic generator; this recipe has other data")
    seed = recipe.seed + seed_offset
    folder = work / f"held-out-seed{seed}-{clips_per_class}"
    if (folder / "complete").is_file():
        return folder
    config = recipe.data[0].model_copy(update={"clips_per_class": clips_per_class})
    catalogue = synthetic_urban_clips(config, seed)
    folder.mkdir(parents=True, exist_ok=True)
    for source, (audio, rate) in catalogue.decode(catalogue.sources):
        soundfile.write(folder / f"{source.clip_id}.wav", audio, rate, subtype="FLOAT")
    (folder / "complete").write_text("")
    return folder


def _held_out_fidelity(run: Path, held_out: Path, work: Path) -> dict:
    """`edgekd evaluate RUN --same-domain FOLDER`'s fidelity on every window of the folder."""
    run, held_out = run.resolve(), held_out.resolve()
    code, _, output = _edgekd("evaluate", str(run), "--same-domain", str(held_out), work=work)
    if code != 0:
        raise SystemExit(f"edgekd evaluate {run} failed ({code}):\n{output[-3000:]}")
    report = json.loads((run / "evaluation.json").read_text())["held_out_in_domain"][str(held_out)]
    return {"windows": report["fidelity_windows"], "cosine": report["fidelity"]["cosine"],
            "cka": report["fidelity"]["cka"]}


def _search(recipe: str, device: str, work: Path, rank_on: Path | None = None, *extra: str) -> dict:
    """The search as a user runs it; with `rank_on`, run again in the same folder, ranking what the first trained."""
    out = work / f"search-{device}"
    ranking = ("--rank-on", str(rank_on.resolve())) if rank_on else ()
    code, seconds, output = _edgekd("search", recipe, "--device", device, "--out", str(out), *ranking, *extra,
                                    work=work)
    if code not in (0, 1):
        raise SystemExit(f"edgekd search {recipe} --device {device} failed ({code}):\n{output[-3000:]}")
    result = json.loads((out / "search.json").read_text())
    if not rank_on:
        shutil.copyfile(out / "search.png", RESULTS / f"search-{device}.png")
    chosen = next((t for t in result["trials"] if t["number"] == result["chosen"]), None)
    print(f"{device}: search ranked on {result['ranked_on']}: exit {code} in {seconds:.0f} s: {result['counts']}; "
          f"chosen {chosen and chosen['name']}", flush=True)
    profiled = None
    if result["export"]:  # the proof a user would run
        profiled = _profile_json(result["export"], device, work)
    return {"exit_code": code, "seconds": seconds, "counts": result["counts"], "chosen": chosen,
            "export": result["export"], "profile": profiled, "notes": result["notes"],
            "pareto": [t["name"] for t in result["trials"] if t["pareto"]]}


def _profile_json(model: str, device: str, work: Path) -> dict:
    code, _, output = _edgekd("profile", model, "--device", device, "--json", work=work)
    report = json.loads(output[output.index("{"):output.rindex("}") + 1])
    return {"exit_code": code, "fits": report["fits"], "storage_bytes": report["storage_bytes"],
            "ram_bytes": report["ram_bytes"], "ram_basis": report["ram_basis"], "violations": report["violations"]}


def _presets(recipe_name: str, device: str, work: Path, compared: Path | None, runtime_file: bool = False) -> list[dict]:
    """Each shipped preset of the recipe's embedding size measured at INT8 and, if it fits, distilled, exported and
    profiled; `compared`: held-out clips to measure its fidelity on; `runtime_file`: export the device runtime's own
    file within its budget (as the search proves), not ONNX."""
    recipe = load_recipe(recipe_name)
    target = load_device(device)
    wanted = recipe.reduction.dim if recipe.reduction.method != "none" else build_teacher(recipe.teacher).dim
    rows = []
    for name, (config, dim) in PRESETS.items():
        if dim != wanted:
            continue  # its embedding cannot be compared with the teacher's reduced one
        row = {"preset": name, "placements": {}}
        for placement in ("include", "exclude"):
            report = measure(config, dim, recipe.window.seconds, recipe.seed, placement, target, "int8")
            row["placements"][placement] = {"fits": report.fits, "flash_bytes": report.storage_bytes,
                                            "ram_bytes": report.ram_bytes}
        fitting = [p for p in ("include", "exclude") if row["placements"][p]["fits"]]
        print(f"{device}: preset {name}: fits with its front-end {'inside' if 'include' in fitting else ''}"
              f"{' and ' if len(fitting) == 2 else ''}{'outside' if 'exclude' in fitting else ''}"
              if fitting else f"{device}: preset {name} does not fit", flush=True)
        if fitting:
            row |= _distil_preset(recipe, name, config, fitting[0], device, work, compared, runtime_file)
        rows.append(row)
    return rows


def _distil_preset(recipe, name: str, config, placement: str, device: str, work: Path, compared: Path | None,
                   runtime_file: bool) -> dict:
    raw = copy.deepcopy(recipe.to_dict())
    raw["name"] = f"{recipe.name}-{name}"
    raw["student"] = config.model_dump(mode="json")
    path = work / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    recipe_from_dict(raw, str(path))  # checked before the run
    run = work / raw["name"]
    if not (run / "metrics.json").is_file():
        code, seconds, output = _edgekd("distill", str(path), "--out", str(run), "--force", work=work)
        if code != 0:
            raise SystemExit(f"edgekd distill {path} failed ({code}):\n{output[-3000:]}")
    metrics = json.loads((run / "metrics.json").read_text())
    runtime = ("--format", "tflite", "--device", device) if runtime_file else ()
    code, _, output = _edgekd("export", str(run), "--frontend", placement, "--no-fp16", *runtime, work=work)
    if code != 0:
        return {"placement": placement, "test_cosine": metrics["fidelity"]["test"]["cosine"],
                "test_cka": metrics["fidelity"]["test"]["cka"], "export_failed": output.strip().splitlines()[-1]}
    profiled = _profile_json(str(run / "export" / f"student.int8.{'tflite' if runtime_file else 'onnx'}"), device,
                             work)
    fresh = _held_out_fidelity(run, compared, work) if compared else None
    print(f"{device}: preset {name} ({placement}): test cosine {metrics['fidelity']['test']['cosine']:.3f}"
          + (f", held-out cosine {fresh['cosine']:.3f}" if fresh else "") + f", INT8 export fits: {profiled['fits']}",
          flush=True)
    return {"placement": placement, "test_cosine": metrics["fidelity"]["test"]["cosine"],
            "test_cka": metrics["fidelity"]["test"]["cka"], "compared": fresh, "profile": profiled}


def _sea_protocol(run: Path, work: Path) -> dict:
    """`edgekd evaluate RUN --protocol sea --logmel-baseline`: probe accuracy (mean, std over the folds) of the
    student, its teacher and the log-mel statistics."""
    code, seconds, output = _edgekd("evaluate", str(run.resolve()), "--protocol", "sea", "--logmel-baseline", work=work)
    if code != 0:
        raise SystemExit(f"edgekd evaluate {run} --protocol sea failed ({code}):\n{output[-3000:]}")
    report = json.loads((run / "evaluation-sea.json").read_text())["in_domain"]
    return {who: {probe: [report[who][f"{probe}_accuracy"], report["std"].get(who, {}).get(f"{probe}_accuracy")]
                  for probe in ("mlp", "logreg")} for who in ("student", "teacher", "logmel_baseline")} | {
        "rounds": report["rounds"], "seconds": seconds}


def _fold_clips(root: Path, fold: int, work: Path) -> Path:
    """A folder of one ESC-10 fold's clips (links, unlabelled): what `--rank-on` ranks on."""
    folder = work / f"fold{fold}-clips"
    folder.mkdir(parents=True, exist_ok=True)
    for clip in sorted(root.glob(f"*/{fold}-*.ogg")):
        link = folder / clip.name
        if not link.exists():
            link.symlink_to(clip.resolve())
    return folder


def _real_search(args: argparse.Namespace) -> None:
    """The search on real audio (see the module's docstring)."""
    teacher, reduction = TEACHERS["SEA-64"]
    raw = real_recipe(f"{args.layout}-search", data_section(args.layout, args.data.resolve(), args.work), teacher,
                      reduction, args.epochs)
    path = args.work / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    held_out = _fold_clips(args.data.resolve(), 5, args.work)
    devices = {}
    for device in args.devices:
        found = _search(str(path.resolve()), device, args.work, held_out, "--trials", str(args.trials))
        rows = []
        if found["chosen"] is not None:
            rows.append({"student": f"search: {found['chosen']['name']}", "rescue": found["chosen"].get("rescue"),
                         "held_out_cosine": found["chosen"].get("held_out_cosine"), "profile": found["profile"],
                         "sea": _sea_protocol(Path(found["chosen"]["run_dir"]), args.work)})
        for preset in _presets(str(path.resolve()), device, args.work, None, runtime_file=True):
            if preset.get("profile", {}).get("fits"):
                rows.append({"student": f"preset: {preset['preset']}", "rescue": None, "held_out_cosine": None,
                             "profile": preset["profile"], "sea": _sea_protocol(
                                 args.work / f"{raw['name']}-{preset['preset']}", args.work)})
        for row in rows:
            sea = row["sea"]
            print(f"{device}: {row['student']}: sea mlp {sea['student']['mlp'][0]:.3f} logreg "
                  f"{sea['student']['logreg'][0]:.3f} (SEA-64 {sea['teacher']['mlp'][0]:.3f} / "
                  f"{sea['teacher']['logreg'][0]:.3f}, log-mel {sea['logmel_baseline']['mlp'][0]:.3f} / "
                  f"{sea['logmel_baseline']['logreg'][0]:.3f}); flash {row['profile']['storage_bytes']:,} B, RAM "
                  f"{row['profile']['ram_bytes']:,} B", flush=True)
        devices[device] = {"search": found, "rows": rows}
    save(f"search-{args.layout}", args, {"recipe": raw["name"], "ranked_on": f"fold 5 ({held_out.name})",
                                         "devices": devices}, "search.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=["nrf52840", "stm32h7"])
    parser.add_argument("--recipe", default="demo")
    parser.add_argument("--held-out-clips", type=int, default=100, help="held-out clips per class")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-search")
    parser.add_argument("--data", type=Path, help="a dataset's folder: search benchmarks/real.py's recipe for it")
    parser.add_argument("--layout", choices=("esc10",), default="esc10")
    parser.add_argument("--trials", type=int, default=16, help="with --data: distinct candidates")
    parser.add_argument("--epochs", type=int, default=30, help="with --data: training epochs")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.data is not None:
        return _real_search(args)
    ranking = _held_out(args.recipe, args.held_out_clips, args.work, seed_offset=1)
    compared = _held_out(args.recipe, args.held_out_clips, args.work, seed_offset=2)
    devices = {}
    for device in args.devices:
        searches = {"validation": _search(args.recipe, device, args.work),
                    "rank_on": _search(args.recipe, device, args.work, rank_on=ranking)}
        for found in searches.values():
            if found["chosen"] is not None:
                found["chosen"]["compared"] = _held_out_fidelity(Path(found["chosen"]["run_dir"]), compared,
                                                                 args.work)
        presets = _presets(args.recipe, device, args.work, compared)
        fitting = [p for p in presets if p.get("profile", {}).get("fits")]
        verdicts = {}
        for split, figures in (("test", lambda t: (t["test_cosine"], t["test_cka"])),
                               ("compared", lambda t: (t["compared"]["cosine"], t["compared"]["cka"]))):
            best = max(fitting, key=lambda p: figures(p)[0], default=None)
            verdicts[split] = {"best_preset": best and best["preset"]}
            for ranked, found in searches.items():
                chosen = found["chosen"]
                verdicts[split][ranked] = best is None or (
                    chosen is not None and all(c >= b for c, b in zip(figures(chosen), figures(best))))
                print(f"{device}: on the {split} clips the best preset that fits is {best and best['preset']}; the "
                      f"choice of the search ranked on {ranked} is at least as faithful (cosine and CKA): "
                      f"{verdicts[split][ranked]}", flush=True)
        devices[device] = {"searches": searches, "presets": presets, "verdicts": verdicts}
    save("search", args, {"recipe": args.recipe, "held_out_clips_per_class": args.held_out_clips, "devices": devices},
         "search.py")


if __name__ == "__main__":
    main()
