"""Real labelled audio under the published evaluation protocols: teachers beside a student distilled from each and
the log-mel statistics baseline, accuracy mean ± std over the data's official folds, with sizes and activation memory.

For each teacher (the published SEA-64 model, CREPE tiny) a student (the demo's sea_cnn) is distilled on the data's
audio without its labels, as SEA distils on the deployment domain's recordings, then `edgekd evaluate --protocol P`
runs for each protocol; folds 1…N of the data are each the test set in turn (the student has heard the test folds'
audio, never their labels). The data path is an argument; CI never needs the audio.

    python benchmarks/real.py --data ESC-10 [--layout esc10|esc50|urbansound8k] [--protocols sea hear window]

ESC-10 (400 clips, 10 classes, 5 folds): the karolpiczak/ESC-10 repository at the commit before its audio moved,
553c8f1 ("NNN - Class/F-ID-T.ogg", F the fold).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from results import ROOT, save

SEA_64 = ROOT.parent / "shared" / "models" / "edgel3_sea_ust_audio_emb_64.h5"
TEACHERS = {  # name in the table: (teacher section, reduction section)
    "SEA-64": ({"name": "l3", "path": str(SEA_64)}, {"method": "none"}),
    "CREPE tiny": ({"name": "crepe", "variant": "tiny", "hop_ms": 250}, {"method": "pca", "dim": 64}),
}


def esc10_labels(root: Path, out: Path) -> Path:
    """ESC-10's layout as a labels.csv edgekd's folder reader takes: the class from the folder name, the fold from
    the file name's first field; fold 5 is the distillation's test split and fold 4 its validation split."""
    rows = []
    for path in sorted(root.glob("*/*.ogg")):
        fold = int(path.name.split("-")[0])
        rows.append({"path": str(path.relative_to(root)), "label": path.parent.name.split(" - ", 1)[1],
                     "group": f"fold{fold}", "split": {5: "test", 4: "val"}.get(fold, "train")})
    if not rows:
        raise SystemExit(f"{root}: no NNN - Class/*.ogg files (the ESC-10 repository's layout)")
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def data_section(layout: str, root: Path, work: Path) -> dict:
    if layout == "esc10":
        return {"name": "folder", "root": str(root), "labels_csv": str(esc10_labels(root, work / "labels.csv"))}
    return {"name": layout, "root": str(root)}


def recipe(name: str, data: dict, teacher: dict, reduction: dict, epochs: int) -> dict:
    demo = yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())
    return {"name": name, "seed": 0, "data": data, "window": {"seconds": 1.0, "hop_seconds": 0.5},
            "teacher": teacher, "reduction": reduction, "student": demo["student"], "loss": demo["loss"],
            "train": dict(demo["train"], epochs=epochs)}


def edgekd(*args: str, env: dict) -> float:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgekd", *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"edgekd {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the dataset's top folder")
    parser.add_argument("--layout", choices=("esc10", "esc50", "urbansound8k"), default="esc10")
    parser.add_argument("--protocols", nargs="+", default=["sea", "hear", "window"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "real")
    args = parser.parse_args()
    if not SEA_64.is_file():
        raise SystemExit(f"{SEA_64}: the published SEA-64 model is needed (see ../shared/models/README.md)")
    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, EDGEKD_CACHE_DIR=str(args.work / "cache"), COLUMNS="160")
    data = data_section(args.layout, args.data.resolve(), args.work)
    runs, seconds = {}, {}
    for teacher, (section, reduction) in TEACHERS.items():
        name = f"{args.layout}-{teacher.split()[0].lower()}"
        path = args.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe(name, data, section, reduction, args.epochs), sort_keys=False))
        run = args.work / name
        seconds[f"distill {teacher}"] = edgekd("distill", str(path), "--out", str(run), "--force", env=env)
        print(f"distilled {teacher}: {seconds[f'distill {teacher}']:.0f} s", flush=True)
        runs[teacher] = {"metrics": json.loads((run / "metrics.json").read_text())}
        for protocol in args.protocols:
            seconds[f"evaluate {teacher} {protocol}"] = edgekd("evaluate", str(run), "--protocol", protocol,
                                                                "--logmel-baseline", env=env)
            report = run / ("evaluation.json" if protocol == "window" else f"evaluation-{protocol}.json")
            runs[teacher][protocol] = json.loads(report.read_text())["in_domain"]
            print(f"evaluated {teacher} under {protocol}: {seconds[f'evaluate {teacher} {protocol}']:.0f} s",
                  flush=True)
    logmel_dim = 2 * yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())["student"]["n_mels"]
    rows = _rows(runs, args.protocols, logmel_dim)
    for row in rows:
        print(" | ".join(f"{k}: {v}" for k, v in row.items()))
    save("real", args, {"layout": args.layout, "rows": rows, "seconds": seconds,
                        "clips": runs[next(iter(TEACHERS))][args.protocols[0]]["clips"],
                        "rounds": runs[next(iter(TEACHERS))][args.protocols[0]]["rounds"]}, "real.py")


def _rows(runs: dict, protocols: list[str], logmel_dim: int) -> list[dict]:
    """One row per embedding: each teacher, the student distilled from it, and (once) the log-mel baseline."""
    rows = []
    for teacher, run in runs.items():
        facts = run["metrics"]
        for who, label, network in (("teacher", teacher, facts["teacher"]),
                                     ("student", f"student ← {teacher}", facts["student"]),
                                     ("logmel_baseline", "log-mel statistics", None)):
            if who == "logmel_baseline" and any(row["embedding"] == label for row in rows):
                continue  # every student here has the same front-end: one baseline row
            row = {"embedding": label, "dim": logmel_dim if network is None else network["dim"],
                   "storage_bytes": None if network is None else network["storage_bytes"],
                   "activation_bytes": None if network is None else network["activation_bytes"]}
            for protocol in protocols:
                column = run[protocol]
                for probe in ("mlp", "logreg"):
                    row[f"{protocol} {probe}"] = [column[who][f"{probe}_accuracy"],
                                                  column["std"].get(who, {}).get(f"{probe}_accuracy")]
            rows.append(row)
    return rows


if __name__ == "__main__":
    main()
