"""Memory and time of `edgekd distill` against the hours of audio on disk, measured side by side in one run.

For each size, a folder of 10-second 16 kHz WAV files (deterministic noise and tones) goes through the three stages
as separate commands, each timed and its peak resident memory read from the kernel (wait4's ru_maxrss):
`edgekd data build` (decode into the audio store), `edgekd cache build` (tiny teacher over every window) and
`edgekd distill` (one training epoch, evaluation; store and cache reused). 1 s windows, 0.5 s hop. Optionally a folder
laid out like SONYC-UST (its annotations.csv format, 10-second clips) goes through `edgekd distill` alone, cold. It
also measures what storing int16 costs: the quantisation SNR of every stored clip, and the cosine between a teacher's
embeddings of the same windows read from float32 audio and from the store.

    python benchmarks/scale.py [--hours 0.25 1 4 16] [--sonyc-clips 18510] [--work /tmp/edgekd-scale]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile
import yaml
from results import ROOT, save

RATE = 16000
CLIP_SECONDS = 10
TINY_TEACHER = {"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": RATE}
STUDENT = {"name": "sea_cnn", "sample_rate": 8000, "n_fft": 256, "hop_length": 160, "n_mels": 32,
           "widths": [4, 8, 16], "pool": "mean"}
SONYC_TAGS = ["1_engine", "2_machinery-impact", "3_non-machinery-impact", "4_powered-saw", "5_alert-signal",
              "6_music", "7_human-voice", "8_dog"]


def _clip(rng: np.random.Generator) -> np.ndarray:
    """Ten seconds of coloured noise under a tone, at a random level."""
    n = RATE * CLIP_SECONDS
    noise = rng.standard_normal(n)
    noise = np.convolve(noise, np.ones(int(rng.integers(1, 8))) / 4, mode="same")
    tone = np.sin(2 * np.pi * rng.uniform(100, 2000) * np.arange(n) / RATE)
    mix = noise + rng.uniform(0, 2) * tone
    return (mix / np.abs(mix).max() * rng.uniform(0.05, 0.9)).astype(np.float32)


def _folder(path: Path, files: int, seed: int) -> Path:
    """`files` WAV clips under `path` (written once; kept for later runs)."""
    done = path / ".complete"
    if done.is_file() and int(done.read_text()) == files:
        return path
    shutil.rmtree(path, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for index in range(files):
        target = path / f"sensor-{index % 20:02d}" / f"{index:06d}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(target, _clip(rng), RATE, subtype="PCM_16")
    done.write_text(str(files))
    return path


def _sonyc(path: Path, clips: int) -> Path:
    """A SONYC-UST layout: audio/ and annotations.csv with three annotators per clip and coarse presence columns."""
    folder = _folder(path / "audio", clips, seed=51)
    if not (path / "annotations.csv").is_file():
        rng = np.random.default_rng(0)
        header = ["split", "sensor_id", "audio_filename", "annotator_id"] + [f"{t}_presence" for t in SONYC_TAGS]
        with open(path / "annotations.csv.tmp", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for index in range(clips):
                split = "test" if index % 10 == 0 else "validate" if index % 10 == 1 else "train"
                name = f"sensor-{index % 20:02d}/{index:06d}.wav"
                for annotator in range(3):
                    writer.writerow([split, f"sensor-{index % 20:02d}", name, annotator,
                                     *rng.integers(0, 2, len(SONYC_TAGS)).tolist()])
        os.replace(path / "annotations.csv.tmp", path / "annotations.csv")
    assert folder.is_dir()
    return path


def _recipe(path: Path, data: dict, epochs: int) -> Path:
    path.write_text(yaml.safe_dump({
        "name": path.stem, "seed": 0, "data": data, "window": {"seconds": 1.0, "hop_seconds": 0.5},
        "teacher": TINY_TEACHER, "reduction": {"method": "pca", "dim": 8}, "student": STUDENT,
        "train": {"epochs": epochs, "batch_size": 64, "lr": 0.003, "warmup_epochs": 0}}))
    return path


def _measured(*args, cache: Path) -> dict:
    """Run one edgekd command; its wall time and peak resident memory (this child alone, from wait4)."""
    env = dict(os.environ, EDGEKD_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT / "tests"))
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "edgekd", *map(str, args)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"edgekd {' '.join(map(str, args))} failed: {process.stderr.read()[-2000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def _one_size(work: Path, hours: float, epochs: int) -> dict:
    files = int(round(hours * 3600 / CLIP_SECONDS))
    folder = _folder(work / f"audio-{hours:g}h", files, seed=int(hours * 100))
    cache, run = work / f"cache-{hours:g}h", work / f"run-{hours:g}h"
    shutil.rmtree(cache, ignore_errors=True)
    recipe = _recipe(work / f"scale-{hours:g}h.yaml", {"name": "folder", "root": str(folder)}, epochs)
    stages = {"store_build": _measured("data", "build", recipe, cache=cache),
              "teacher_inference": _measured("cache", "build", recipe, cache=cache),
              "distill": _measured("distill", recipe, "--out", run, "--force", cache=cache)}
    metrics = json.loads((run / "metrics.json").read_text())
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    windows = sum(metrics["windows"].values())
    store_bytes = sum(p.stat().st_size for p in (cache / "audio").rglob("shard-*.npy"))
    row = {"hours": hours, "files": files, "windows": windows, "store_mb": round(store_bytes / 1e6, 1),
           "epoch_seconds": round(history[0]["seconds"], 1), "val_cosine": history[-1]["val_cosine"],
           "stages": stages, "peak_rss_mb": max(stage["peak_rss_mb"] for stage in stages.values())}
    row["seconds_per_hour"] = {"store_build": round(stages["store_build"]["seconds"] / hours, 1),
                               "teacher_inference": round(stages["teacher_inference"]["seconds"] / hours, 1),
                               "training_epoch": round(row["epoch_seconds"] / hours, 1)}
    print(f"{hours:>6g} h  {windows:>7,} windows  store {row['store_mb']:>7.1f} MB  "
          + "  ".join(f"{name} {s['seconds']:>6.1f} s / {s['peak_rss_mb']:>5} MB" for name, s in stages.items())
          + f"  epoch {row['epoch_seconds']} s", flush=True)
    return row


def _int16_fidelity(work: Path) -> dict:
    """What storing int16 with a per-clip scale costs: quantisation SNR over the demo's clips and a 1-hour folder's,
    and the cosine between CREPE-tiny embeddings of the demo windows read from float32 audio and from the store."""
    import torch

    from edgekd.data.domain import catalogues, load_domain_data
    from edgekd.recipe import load_recipe, recipe_from_dict
    from edgekd.teachers import build_teacher

    os.environ["EDGEKD_CACHE_DIR"] = str(work / "cache-fidelity")
    demo = load_recipe("demo")
    raw = yaml.safe_load(Path(demo.source).read_text())
    recipe = recipe_from_dict(raw | {"teacher": {"name": "crepe", "variant": "tiny", "hop_ms": 250}}, demo.source)
    teacher = build_teacher(recipe.teacher)
    data = load_domain_data(recipe.domain(), teacher.sample_rate, recipe.student.sample_rate)
    listed, = catalogues(recipe.domain())
    exact = {source.clip_id: audio for source, (audio, _) in listed.decode(listed.sources)}  # generated at 16 kHz
    stored = data.teacher_audio
    snr = []
    for index, clip_id in enumerate(data.windows.clips.ids):
        clip = stored.stored[index]
        back = stored.stores[0].read(clip, 0, clip.length)
        error = back - exact[clip_id]
        snr.append(10 * np.log10((exact[clip_id] ** 2).mean() / max((error**2).mean(), 1e-30)))
    rows = np.arange(len(stored))
    float32 = np.stack([exact[data.windows.clips.ids[c]][: stored.samples] for c in data.windows.clip])
    with torch.no_grad():
        a = teacher.embed(torch.from_numpy(float32)).numpy()
        b = teacher.embed(torch.from_numpy(stored[rows])).numpy()
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"clips": len(snr), "snr_db_min": round(float(np.min(snr)), 1), "snr_db_median": round(float(np.median(snr)), 1),
            "teacher": "crepe tiny", "embedding_cosine_min": float(cosine.min()),
            "embedding_cosine_mean": float(cosine.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[0.25, 1, 4, 16])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--sonyc-clips", type=int, default=18510, help="0 to leave the SONYC-UST layout out")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgekd-scale"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {"fidelity_int16": _int16_fidelity(args.work)}
    print("int16 store:", results["fidelity_int16"], flush=True)
    results["sizes"] = [_one_size(args.work, hours, args.epochs) for hours in args.hours]
    first, last = results["sizes"][1 if len(args.hours) > 2 else 0], results["sizes"][-1]
    results["rss_growth"] = {"from_hours": first["hours"], "to_hours": last["hours"],
                             "percent": round(100 * (last["peak_rss_mb"] / first["peak_rss_mb"] - 1), 1)}
    print(f"peak RSS from {first['hours']:g} h to {last['hours']:g} h: {results['rss_growth']['percent']:+.1f} %")
    if args.sonyc_clips:
        root = _sonyc(args.work / f"sonyc-{args.sonyc_clips}", args.sonyc_clips)
        cache = args.work / "cache-sonyc"
        shutil.rmtree(cache, ignore_errors=True)
        recipe = _recipe(args.work / "scale-sonyc.yaml", {"name": "sonyc_ust", "root": str(root)}, args.epochs)
        measured = _measured("distill", recipe, "--out", args.work / "run-sonyc", "--force", cache=cache)
        metrics = json.loads((args.work / "run-sonyc" / "metrics.json").read_text())
        results["sonyc_ust_layout"] = measured | {"clips": args.sonyc_clips,
                                                  "hours": round(args.sonyc_clips * CLIP_SECONDS / 3600, 1),
                                                  "windows": sum(metrics["windows"].values())}
        print("SONYC-UST layout:", results["sonyc_ust_layout"], flush=True)
    save("scale", args, results, "scale.py")


if __name__ == "__main__":
    main()
