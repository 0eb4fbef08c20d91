"""The `methods` section of a recipe: published distillation methods added to plain SEA, each off unless named.

Plain SEA regresses the student's embedding onto the reduced teacher embedding. Every method here adds a term, a
weight per example or a training-set choice to that; the defaults are those of the papers where they give one.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from edgekd.config import StrictModel


class KdConfig(StrictModel):
    """Vanilla KD (Hinton et al. 2015): a classification head on the student's embedding learns
    α·CE(hard labels) + (1−α)·T²·KL(teacher soft targets at T ‖ student at T)."""

    temperature: float = Field(4.0, gt=0, description="softening temperature T")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the hard labels; 1−α goes to the soft targets")
    weight: float = Field(1.0, ge=0, description="weight of the head's loss beside the embedding loss")
    teacher_head_folds: int = Field(5, ge=2, description="out-of-fold teacher head on training windows: a head "
                                    "scored on its own training rows would agree with every label")


class MutualConfig(StrictModel):
    """Deep mutual learning (Zhang et al. 2018): a peer student of the same family, started from another seed,
    trains alongside; each also mimics the other's (detached) embedding and, with a head, its predictions."""

    weight: float = Field(1.0, ge=0)
    temperature: float = Field(1.0, gt=0, description="softening of the peers' predictions (heads only)")


class LabelRevisionConfig(StrictModel):
    """Label revision (Lan et al. 2024): where the teacher's soft label disagrees with the ground truth, move it
    toward the one-hot label just far enough that the true class ranks first."""

    beta: float = Field(0.8, gt=0, lt=1, description="most weight the teacher keeps in a revised label")


class SelectionConfig(StrictModel):
    """Data selection by teacher reliability (Lan et al. 2024): only the examples on which the teacher is most
    reliable (its out-of-fold probability of the true class) get teacher supervision; the rest learn from labels
    alone (with a head) or are left out."""

    keep: float = Field(0.8, gt=0, le=1, description="fraction of training windows that keep teacher supervision")


class CensorConfig(StrictModel):
    """Scaffolding by censoring (Kag et al. 2023): examples whose teacher-student gap is in the top of their batch
    are too hard for the student's capacity; their teacher terms are down-weighted, smoothing the objective."""

    quantile: float = Field(0.8, gt=0, lt=1, description="gaps above this in-batch quantile are censored")
    weight: float = Field(0.0, ge=0, lt=1, description="weight left on a censored example (0: dropped)")
    start_epoch: int = Field(5, ge=0, description="epochs of full supervision before censoring starts")


class DifferenceSamplingConfig(StrictModel):
    """Difference sampling (MiniPLM, Gu et al. 2025): once, before training, score each training window by how much
    harder a small reference model finds it than the teacher (reference loss − teacher loss, out of fold) and keep
    the highest-scoring fraction within each class, so the set stays diverse."""

    keep: float = Field(0.7, gt=0, lt=1, description="fraction of training windows kept")


class RelationalBankConfig(StrictModel):
    """Similarity mimicry over a memory bank (CompRess, Abbasi Koohpayegani et al. 2020): the student's softmax of
    similarities to a queue of its own past embeddings matches the teacher's to the same examples."""

    size: int = Field(256, ge=2, description="examples held in the memory bank")
    temperature: float = Field(0.1, gt=0)
    weight: float = Field(1.0, ge=0)


class RetrievalConfig(StrictModel):
    """Retrieval-augmented KD: a knowledge base of teacher embeddings (k-means representatives of the training
    set); the student learns to retrieve from it as the teacher would and, with `at_inference`, its output is
    mixed with what it retrieves — the base then ships inside the model and counts in its storage."""

    size: int = Field(64, ge=2, description="knowledge-base entries")
    temperature: float = Field(0.1, gt=0, description="softmax temperature over cosine similarities to the base")
    weight: float = Field(1.0, ge=0, description="weight of matching the teacher's retrieval distribution")
    at_inference: bool = Field(True, description="deploy the base: output (1−mix)·student + mix·retrieved")
    mix: float = Field(0.5, ge=0, le=1)


class AttentionConfig(StrictModel):
    """Attention-map alignment across head counts (AMAD): each student head is matched to a soft, cosine-similarity
    weighted mix of the teacher's heads, layer to layer, by KL between attention distributions. The attention
    teacher is a transformer from an earlier edgekd run (see the `transformer` student)."""

    teacher_run: str = Field(description="run directory whose student is the transformer attention teacher")
    weight: float = Field(1.0, ge=0)
    temperature: float = Field(0.1, gt=0, description="softmax temperature of the head alignment")


class TeacherFreeConfig(StrictModel):
    """Teacher-free soft labels (ReffAKD, Doshi & Kim 2024): a compact autoencoder on the log-mel, trained in
    seconds; the cosine similarities between its class-mean codes become each class's soft label, used by `kd` in
    place of a teacher's."""

    latent: int = Field(32, ge=2)
    epochs: int = Field(30, ge=1)
    temperature: float = Field(0.1, gt=0, description="softmax temperature over class-code similarities")


class MethodsConfig(StrictModel):
    kd: KdConfig | None = None
    mutual: MutualConfig | None = None
    label_revision: LabelRevisionConfig | None = None
    selection: SelectionConfig | None = None
    censor: CensorConfig | None = None
    difference_sampling: DifferenceSamplingConfig | None = None
    relational_bank: RelationalBankConfig | None = None
    retrieval: RetrievalConfig | None = None
    attention: AttentionConfig | None = None
    teacher_free: TeacherFreeConfig | None = None

    @model_validator(mode="after")
    def _requirements(self) -> "MethodsConfig":
        for name in ("label_revision", "teacher_free"):
            if getattr(self, name) is not None and self.kd is None:
                raise ValueError(f"'{name}' revises or replaces soft labels: add a 'kd' section (the head)")
        if self.label_revision is not None and self.teacher_free is not None:
            raise ValueError("'label_revision' revises a teacher's soft labels; 'teacher_free' replaces them with "
                             "class soft labels that already rank the true class first: use one of them")
        return self

    def enabled(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name) is not None]
