"""Attention-map alignment across different head counts (AMAD). A student with fewer (or more) heads than its teacher
cannot match heads one to one: each student head is matched to a soft mix of teacher heads, weighted by
softmax(cosine similarity of their maps / T), and learns that mixed attention distribution by KL, per query token.
Layers are paired evenly (student layer i ↔ teacher layer ⌈(i+1)·L_t/L_s⌉−1). The attention teacher is the
transformer student of an earlier edgekd run."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from pydantic import Field

from edgekd.distillation import DistillationModel, Method
from edgekd.errors import EdgekdError
from edgekd.losses.terms import cosine_logits
from edgekd.schema import StrictModel
from edgekd.supervision import Supervision

_SAME_TOKENS = ("sample_rate", "n_fft", "hop_length", "n_mels", "patch_frames")


class AttentionConfig(StrictModel):
    teacher_run: str = Field(description="run directory whose student is the transformer attention teacher")
    weight: float = Field(1.0, ge=0)
    temperature: float = Field(0.1, gt=0, description="softmax temperature of the head alignment")


def amad_loss(student_maps: list[torch.Tensor], teacher_maps: list[torch.Tensor], temperature: float) -> torch.Tensor:
    total = student_maps[0].sum() * 0.0
    for index, student in enumerate(student_maps):
        teacher = teacher_maps[math.ceil((index + 1) * len(teacher_maps) / len(student_maps)) - 1]
        if student.shape[-1] != teacher.shape[-1]:
            raise ValueError(f"attention maps cover {student.shape[-1]} student tokens but {teacher.shape[-1]} "
                             "teacher tokens; use the same front-end and patch size")
        batch, heads = student.shape[:2]
        # (batch, student heads, teacher heads): how alike each pair of heads attends, per example
        alignment = torch.softmax(torch.stack([
            cosine_logits(student[b].detach().flatten(1), teacher[b].flatten(1), temperature) for b in range(batch)
        ]), -1)
        target = torch.einsum("bst,btqk->bsqk", alignment, teacher)
        kl = (target * (torch.log(target + 1e-9) - torch.log(student + 1e-9))).sum(-1)
        total = total + kl.mean()
    return total / len(student_maps)


class AttentionAlignment(Method):
    name = "attention"
    config_model = AttentionConfig
    order = 100

    def attach(self, model: DistillationModel, supervision: Supervision) -> None:
        run_dir, context = Path(self.config.teacher_run), self.context
        teacher, its_student = context.student_of_run(run_dir)
        if its_student.name != "transformer" or context.student.name != "transformer":
            raise EdgekdError(f"{context.source}: methods.attention aligns transformer attention maps; the student is "
                              f"'{context.student.name}' and {run_dir}'s is '{its_student.name}'")
        mismatched = [key for key in _SAME_TOKENS if getattr(its_student, key) != getattr(context.student, key)]
        if mismatched:
            raise EdgekdError(f"{context.source}: methods.attention: the student's '{mismatched[0]}' differs from the "
                              f"attention teacher's in {run_dir}; both must see the same tokens")
        model.attention_teacher = teacher.requires_grad_(False)
        model.frozen.append(teacher)

    def outputs(self, model: DistillationModel, audio: torch.Tensor, out: dict) -> None:
        out["attention"] = model.student.body.attention_maps()
        with torch.no_grad():
            model.attention_teacher(audio)
        out["teacher_attention"] = model.attention_teacher.body.attention_maps()

    def loss_terms(self, model, out, batch, epoch, trust):
        return [self.config.weight * amad_loss(out["attention"], out["teacher_attention"], self.config.temperature)]


METHOD = AttentionAlignment
