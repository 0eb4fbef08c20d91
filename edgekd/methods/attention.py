"""Attention-map alignment across different head counts (AMAD).

A student with fewer (or more) heads than its teacher cannot match heads one to one. Each student head is matched
to a soft mix of teacher heads, weighted by softmax(cosine similarity of their maps / T), and learns that mixed
attention distribution by KL, per query token. Layers are paired evenly (student layer i ↔ teacher layer
⌈(i+1)·L_t/L_s⌉−1).
"""

from __future__ import annotations

import math

import torch

from edgekd.losses import cosine_logits


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
