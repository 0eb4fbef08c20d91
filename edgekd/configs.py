"""The configuration every stage reads, declared once: the recipe's own sections (window, reduction, train, probe,
search) and the choices they share with the stages. Plain pydantic, importing neither torch nor
numpy nor any registry: `recipe.py` composes these with the registries' configs, and a stage takes only the section
it needs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edgekd.schema import StrictModel

FrontendPlacement = Literal["include", "exclude"]
Precision = Literal["int8", "fp32"]  # what `edgekd search` exports its chosen student at


class WindowConfig(StrictModel):
    seconds: float = Field(1.0, gt=0, description="length of one embedding window")
    hop_seconds: float | None = Field(None, gt=0, description="hop between windows; defaults to the window length")
    min_fraction: float = Field(0.5, gt=0, le=1, description="least share of a window that must be audio, not zero "
                                "padding: shorter clips are skipped (and listed), shorter last windows dropped")


class ReductionConfig(StrictModel):
    method: Literal["pca", "umap", "none"] = "pca"
    dim: int = Field(64, ge=1, description="output dimension of the reduction φ (SEA: 64/128/256)")
    sample: Literal["random", "stratified", "loudness", "diverse"] = Field(
        "random", description="which training windows the reduction is fitted on (SEA: within 0.01 AUPRC)")
    sample_size: int | None = Field(65536, ge=2, description="training windows to fit on at most (null: every one)")


class QatConfig(StrictModel):
    """`train: {qat: ...}`: after training, fine-tune the student's network with fake quantisation where TFLite's
    int8 scheme puts it, still regressing the teacher's reduced embeddings; the INT8 exports quantise those weights."""

    epochs: int = Field(ge=1, description="epochs of quantisation-aware fine-tuning after training")
    lr: float | None = Field(None, gt=0, description="its learning rate (cosine from it); default: train.lr / 10")


class TrainConfig(StrictModel):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    accumulate: int = Field(1, ge=1, description="micro-batches per optimiser step (gradient accumulation)")
    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["cosine", "plateau"] = Field(
        "cosine", description="cosine: warm-up then cosine decay; plateau: SEA's ×factor when validation stalls")
    warmup_epochs: int = Field(1, ge=0)
    plateau_patience: int = Field(5, ge=1, description="epochs without improvement before the rate drops")
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    early_stopping: int | None = Field(None, ge=1, description="stop after this many epochs without improvement")
    ema: float | None = Field(None, gt=0, lt=1, description="decay of an exponential moving average of the weights")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(True, description="bf16 autocast of the student's body on CUDA (the front-end stays FP32)")
    num_threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: torch's choice")
    qat: QatConfig | None = Field(None, description="quantisation-aware fine-tuning after training (needs the "
                                  "executorch extra: PT2E, torchao)")


class ProbeConfig(StrictModel):
    max_iter: int = Field(2000, ge=1)
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic-regression probe")


class SearchConfig(StrictModel):
    """`search:`: the space `edgekd search` explores, each key a list of choices. A key left out takes the default
    of the device's class (edgekd/stages/search.py: microcontrollers, or larger devices)."""

    families: list[Literal["sea_cnn", "dscnn", "mobilenet"]] | None = Field(None, min_length=1)
    widths: list[Annotated[float, Field(gt=0, le=4)]] | None = Field(
        None, min_length=1, description="multipliers of each family's base channel counts")
    depths: list[Annotated[int, Field(ge=1, le=4)]] | None = Field(None, min_length=1, description="blocks (stages)")
    n_mels: list[Annotated[int, Field(ge=4, le=256)]] | None = Field(None, min_length=1)
    sample_rates: list[Annotated[int, Field(ge=1000, le=48000)]] | None = Field(None, min_length=1)
    hop_ms: list[Annotated[float, Field(ge=1, le=100)]] | None = Field(None, min_length=1)
    frontend: list[FrontendPlacement] | None = Field(
        None, min_length=1, description="include: the model takes audio; exclude: the device computes the log-mel")
    trials: int = Field(24, ge=1, description="distinct candidates proposed, those that cannot fit included")
    min_epochs: int = Field(5, ge=1, description="epochs every trained candidate gets before it may be stopped early "
                            "(Hyperband's least resource; at most the epochs trained)")
    qat_epochs: int = Field(5, ge=0, description="quantisation-aware training a candidate gets before it is given up "
                            "for an INT8 file that misses its gate or the device's budget (0: none)")
