"""Quantisation past plain INT8 for microcontrollers: every student family that exports to `.tflite`, distilled on
the demo recipe, exported to TFLite Micro with the log-mel outside the model, as plain INT8 (post-training
quantisation), after quantisation-aware fine-tuning of the finished run (`edgekd export --qat-epochs N`, which
fine-tunes exactly as the recipe's `train: {qat: {epochs: N}}` would; its run's student is the fine-tuned one), with
int16 activations and int8 weights (`--int16x8`), and with each layer's precision chosen by fidelity within
nrf52840's budget under a
strict gate (`--min-cosine 0.999 --device nrf52840`). Each file's mean and least embedding cosine to its run's FP32
PyTorch student and its probe points lost are the export gate's, on the held-out windows (validation and test);
beside them each file's cosine to the teacher's reduced embeddings on the same windows, which is what the
quantised student is for (the fine-tuned student is another FP32 model, so its files are compared on that); flash
is the file, RAM TFLM's measured arena. Where arm-none-eabi-gcc, QEMU and ../shared/third_party are here, each
quantised file is also built as nrf52840 firmware (`edgekd deploy --build`, 8 held-out windows): its image's flash
and RAM, and the instructions per inference on the Cortex-M4 (CMSIS-NN's int8 and int16 kernels).

    python benchmarks/quantisation.py [--out runs/quantisation] [--gate 0.999] [--qat-epochs 10]
    python benchmarks/quantisation.py --data ESC-10 --epochs 30 --no-firmware    # real audio (results: quantisation-esc10)

With `--data`, the recipe is benchmarks/real.py's for that dataset (the published SEA-64 teacher, the folds' audio
without labels, fold 4 validation and fold 5 test, each family distilled on it), so the gate's windows and probe are
real recordings and labels.

The l3 family (SEA's students) is left out: at its presets its activations (0.8 MB) exceed every microcontroller's
RAM, at any precision."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch
from real import SEA_64, TEACHERS, data_section, recipe
from results import ROOT, save

from edgekd.cache import teacher_embeddings
from edgekd.data.domain import load_domain_data
from edgekd.errors import EdgekdError
from edgekd.formats.options import ExportOptions
from edgekd.formats.tflite.runtime import run_tflite
from edgekd.metrics import cosine_rows
from edgekd.recipe import recipe_from_dict
from edgekd.run_dir import RunDir
from edgekd.schema import read_yaml
from edgekd.stages.deploy import deploy
from edgekd.stages.distill import distill_once
from edgekd.stages.export import export_run
from edgekd.supervision import LogMel
from edgekd.teachers import build_teacher

FAMILIES = {
    "sea_cnn": None,  # the demo's own student
    "dscnn": {"name": "dscnn", "sample_rate": 8000, "n_fft": 256, "hop_length": 160, "n_mels": 64},
    "mobilenet": {"name": "mobilenet", "sample_rate": 8000, "n_fft": 256, "hop_length": 160, "n_mels": 64},
}
DEVICE = "nrf52840"
THIRD_PARTY = ROOT.parent / "shared" / "third_party"
DEPLOY_PRECISION = {"INT8 (PTQ)": "int8", "int16x8": "int16x8"}  # else (per-layer): int8, the file's own types


def _firmware(row: dict, export: Path, folder: Path) -> None:
    """The file as nrf52840 firmware under QEMU: its flash, RAM and instructions (or why it was not built)."""
    precision = DEPLOY_PRECISION.get(row["quantisation"], "int8")
    try:
        result = deploy(export / row["file"], DEVICE, folder, True, 8, "exclude", precision, THIRD_PARTY)
    except EdgekdError as err:  # the toolchain missing, or a firmware over the budget: said in the row
        measured = json.loads((folder / "deploy.json").read_text()).get("measured") if (
            folder / "deploy.json").is_file() else None
        row["firmware"] = {"error": str(err), **({"flash": measured["flash"], "ram": measured["ram"],
                                                  "network_instructions": measured["network_instructions"],
                                                  "latency_ms": measured["frontend_ms"] + measured["network_ms"]}
                                                 if measured else {})}
        return
    measured = result.measured
    row["firmware"] = {"flash": measured.flash, "ram": measured.ram, "network_instructions":
                       measured.network_instructions, "latency_ms": measured.frontend_ms + measured.network_ms,
                       "outputs_identical": f"{measured.outputs_identical}/{measured.windows}"}


def _held_out(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The run's held-out windows (validation and test) as its student's log-mel, and the teacher's reduced
    embeddings of them (from the teacher-embedding cache the run filled)."""
    student, recipe = RunDir(run_dir).load_student()
    teacher = build_teacher(recipe.teacher)
    data = load_domain_data(recipe.domain(), teacher.sample_rate, recipe.student.sample_rate)
    rows = np.concatenate([data.windows.split_index("val"), data.windows.split_index("test")])
    raw = teacher_embeddings(teacher, data.windows, data.teacher_audio, torch.device("cpu")).embeddings
    return LogMel(student.frontend, data.student_audio)[rows], RunDir(run_dir).load_reduction().transform(raw)[rows]


def _teacher_cosine(rows: list[dict], export: Path, held_out: tuple[np.ndarray, np.ndarray]) -> None:
    logmel, targets = held_out
    for row in rows:
        row["teacher_cosine"] = float(cosine_rows(run_tflite(export / row["file"], logmel), targets).mean())


def _rows(family: str, report: dict, kinds: dict[str, str]) -> list[dict]:
    rows = []
    for variant in report["variants"]:
        kind = kinds.get(variant["precision"])
        if kind is None:
            continue
        layers = report["layer_precision"].get(Path(variant["file"]).name, {})
        rows.append({"family": family, "quantisation": kind, "file": variant["file"],
                     "mean_cosine": variant["mean_cosine"], "min_cosine": variant["min_cosine"],
                     "points_lost": variant["accuracy_drop"], "flash": variant["size_bytes"],
                     "arena": variant["tflm_arena"]["total"], "passed": variant["passed"],
                     "int16x8_layers": sum(p == "int16x8" for p in layers.values()),
                     "fp32_layers": sum(p == "fp32" for p in layers.values()), "layers": layers,
                     "missed": variant["missed"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quantisation"), help="where the runs are kept")
    parser.add_argument("--gate", type=float, default=0.999, help="the strict gate's least mean cosine")
    parser.add_argument("--qat-epochs", type=int, default=10, help="epochs of quantisation-aware fine-tuning")
    parser.add_argument("--data", type=Path, help="a dataset's folder (benchmarks/real.py's recipe) instead of the demo")
    parser.add_argument("--layout", choices=("esc10", "esc50", "urbansound8k"), default="esc10")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the recipe's)")
    parser.add_argument("--no-firmware", action="store_true", help="do not build the files as nrf52840 firmware")
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    args = parser.parse_args()
    base_recipe, rows, notes = _base_recipe(args), [], {}
    for family, student in ((name, FAMILIES[name]) for name in args.families):
        raw = copy.deepcopy(base_recipe) | ({"student": student} if student else {})
        run_dir = args.out / family
        distill_once(recipe_from_dict(raw, f"{raw['name']} with a {family} student"), run_dir)
        base = dict(formats=("tflite",), frontend="exclude", fp16=False)
        plain = export_run(run_dir, run_dir / "export-ptq", ExportOptions(**base, int16x8=True, fallback=False,
                                                                          min_cosine=0.0, max_accuracy_drop=100.0))
        ptq = json.loads((run_dir / "export-ptq" / "export.json").read_text())
        rows += _rows(family, ptq, {"fp32": "FP32", "int8": "INT8 (PTQ)", "int16x8": "int16x8"})
        _teacher_cosine(rows[-3:], run_dir / "export-ptq", _held_out(run_dir))
        # QAT on the finished run (`edgekd export --qat-epochs`: bit-identical to the recipe's train.qat, tested)
        tuned = export_run(run_dir, run_dir / "export-qat", ExportOptions(**base, fallback=False, min_cosine=0.0,
                                                                          max_accuracy_drop=100.0,
                                                                          qat_epochs=args.qat_epochs))
        qat_dir = run_dir / "export-qat" / "qat"
        qat = json.loads((run_dir / "export-qat" / "export.json").read_text())
        rows += _rows(family, qat, {"fp32": f"FP32 after QAT ({args.qat_epochs} epochs)",
                                    "int8": f"INT8 after QAT ({args.qat_epochs} epochs)"})
        _teacher_cosine(rows[-2:], run_dir / "export-qat", _held_out(qat_dir))
        strict = export_run(run_dir, run_dir / "export-mixed", ExportOptions(**base, min_cosine=args.gate,
                                                                             device=DEVICE))
        mixed = json.loads((run_dir / "export-mixed" / "export.json").read_text())
        chosen = _rows(family, mixed, {"int8+mixed": f"per-layer, gate {args.gate:g}, within {DEVICE}",
                                       "int8": f"per-layer, gate {args.gate:g}, within {DEVICE}"})
        rows += chosen
        _teacher_cosine(chosen, run_dir / "export-mixed", _held_out(run_dir))
        notes[family] = plain.notes + tuned.notes + strict.notes
        # its quantised files (after QAT: the same shapes as INT8's, so the same firmware figures)
        for row, export in zip(rows[-5:], ("export-ptq", "export-ptq", None, None, "export-mixed")):
            if row["passed"] and export and not args.no_firmware:
                _firmware(row, run_dir / export, run_dir / "firmware" / export / row["quantisation"][:5].strip())
        for row in rows[-6:]:
            firmware = row.get("firmware", {})
            print(f"{family:10} {row['quantisation']:40} cos {row['mean_cosine']:.5f} (min {row['min_cosine']:.4f}) "
                  f"teacher cos {row['teacher_cosine']:.4f}  "
                  f"lost {row['points_lost']:+.2f} pts  flash {row['flash']:,} B  arena {row['arena']:,} B  "
                  f"int16x8 {row['int16x8_layers']} fp32 {row['fp32_layers']}  {'pass' if row['passed'] else 'FAIL'}"
                  + (f"  firmware: {firmware.get('network_instructions', 0):,} instructions, "
                     f"{firmware.get('latency_ms', 0):.0f} ms, RAM {firmware.get('ram', 0):,} B"
                     f"{' — ' + firmware['error'] if 'error' in firmware else ''}" if firmware else ""),
                  flush=True)
    save("quantisation" if args.data is None else f"quantisation-{args.layout}", args,
         {"rows": rows, "device": DEVICE, "gate": args.gate, "notes": notes, "recipe": base_recipe["name"]},
         "quantisation.py")


def _base_recipe(args: argparse.Namespace) -> dict:
    """The demo's recipe, or with --data benchmarks/real.py's recipe for that dataset (the SEA-64 teacher)."""
    demo = read_yaml(ROOT / "recipes" / "demo.yaml", "recipe")
    if args.data is None:
        return demo | ({"train": dict(demo["train"], epochs=args.epochs)} if args.epochs else {})
    if not SEA_64.is_file():
        raise SystemExit(f"{SEA_64}: the published SEA-64 model is needed (see ../shared/models/README.md)")
    args.out.mkdir(parents=True, exist_ok=True)
    teacher, reduction = TEACHERS["SEA-64"]
    return recipe(args.layout, data_section(args.layout, args.data.resolve(), args.out), teacher, reduction,
                  args.epochs or demo["train"]["epochs"])


if __name__ == "__main__":
    main()
