"""`edgekd export`: a run's student → student.onnx (FP32) and student.int8.onnx, both verified against PyTorch.

The fitted reduction is not part of the exported model: the student already outputs the reduced space.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from edgekd import __version__
from edgekd.distill import load_domain_data, load_student
from edgekd.export import Verification, export_onnx, quantize_int8, verify


@dataclass
class ExportResult:
    files: list[Path]
    verifications: list[Verification]


def export_run(run_dir: Path, out_dir: Path, calib_count: int = 64) -> ExportResult:
    student, recipe = load_student(run_dir)
    data = load_domain_data(recipe, recipe.student.sample_rate)
    train, test = data.windows.split_index("train"), data.windows.split_index("test")
    # Calibration windows are spread over the training split so every class is seen.
    calib = data.student_audio[train[np.linspace(0, len(train) - 1, min(calib_count, len(train))).astype(int)]]
    held_out = data.student_audio[test]
    frontend = student.frontend.spec
    metadata = {
        "edgekd_version": __version__,
        "sample_rate": frontend.sample_rate,
        "window_seconds": recipe.window.seconds,
        "input": "mono float32 audio, shape (batch, samples)",
        "frontend": json.dumps(frontend.to_dict()),
        "embedding_dim": student.embedding_dim,
        "teacher": json.dumps(recipe.teacher.model_dump(mode="json")),
        "recipe_digest": recipe.digest(),
    }
    fp32 = export_onnx(student, torch.from_numpy(held_out[:1]), out_dir / "student.onnx", metadata)
    int8 = quantize_int8(fp32, out_dir / "student.int8.onnx", calib)
    with torch.no_grad():
        reference = student(torch.from_numpy(held_out)).numpy()
    rows = [verify(fp32, "fp32", reference, held_out), verify(int8, "int8", reference, held_out)]
    report = out_dir / "export.json"
    report.write_text(json.dumps({"verification": [asdict(r) for r in rows], "calibration_windows": len(calib)},
                                 indent=2))
    return ExportResult([fp32, int8, report], rows)
