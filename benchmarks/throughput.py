"""Student training throughput (windows/s) on this machine's CPU, and on CUDA when present, beside the data
pipeline alone (batch indexing and transfer, the ceiling training could reach), measured in one run.

    python benchmarks/throughput.py [--windows 512] [--epochs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results import save

from edgekd.configs import TrainConfig
from edgekd.distillation import DistillationModel
from edgekd.losses import build_loss
from edgekd.recipe import load_recipe
from edgekd.students import build_student
from edgekd.trainer import train_student


def _pipeline_only(audio: np.ndarray, batch_size: int, device: torch.device, epochs: int) -> float:
    x = torch.from_numpy(audio).to(device)
    began = time.perf_counter()
    for epoch in range(epochs):
        order = np.random.default_rng([0, epoch]).permutation(len(audio))
        for start in range(0, len(order), batch_size):
            batch = x[torch.from_numpy(order[start : start + batch_size]).to(device)]
            batch.sum().item()  # force the copy (and, on CUDA, the sync)
    return epochs * len(audio) / (time.perf_counter() - began)


def _training(audio: np.ndarray, targets: np.ndarray, device: str, epochs: int, recipe) -> float:
    torch.manual_seed(0)
    student = build_student(recipe.student, targets.shape[1])
    config = TrainConfig(**(recipe.train.model_dump() | {"epochs": epochs, "device": device}))
    index = np.arange(len(audio))
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        model = DistillationModel(student, build_loss(recipe.loss), [])
        train_student(model, audio, {"target": targets}, index, index[:64], config, 0, Path(tmp) / "checkpoint.pt")
        return epochs * len(audio) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    recipe = load_recipe("demo")
    rng = np.random.default_rng(0)
    samples = int(recipe.window.seconds * recipe.student.sample_rate)
    audio = (0.1 * rng.standard_normal((args.windows, samples))).astype(np.float32)
    targets = rng.standard_normal((args.windows, recipe.reduction.dim)).astype(np.float32)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"demo student ({recipe.student.name}), batch {recipe.train.batch_size}, {args.windows} windows × "
          f"{args.epochs} epochs, torch threads {torch.get_num_threads()}")
    print(f"{'device':8} {'data pipeline alone':>22} {'training':>14} {'training / pipeline':>20}")
    rows = {}
    for device in devices:
        ceiling = _pipeline_only(audio, recipe.train.batch_size, torch.device(device), args.epochs)
        speed = _training(audio, targets, device, args.epochs, recipe)
        rows[device] = {"pipeline_windows_per_s": ceiling, "training_windows_per_s": speed}
        print(f"{device:8} {ceiling:>16.0f} win/s {speed:>8.0f} win/s {speed / ceiling:>19.4f}")
    if len(devices) == 1:
        print("no CUDA device here: the GPU row is measured where one is present")
    save("throughput", args, {"student": recipe.student.name, "batch_size": recipe.train.batch_size,
                              "torch_threads": torch.get_num_threads(), "devices": rows}, "throughput.py")


if __name__ == "__main__":
    main()
