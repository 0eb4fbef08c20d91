"""The reduction φ of teacher embeddings (SEA): PCA fitted on the training split, or none."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.config import ReductionConfig
from edgekd.errors import RecipeError


@dataclass
class Reduction:
    method: str
    mean: np.ndarray  # (D,)
    components: np.ndarray | None  # (k, D) rows of the projection, None for identity
    explained_variance: float  # fraction of the teacher's variance the k dims keep

    @property
    def dim(self) -> int:
        return len(self.mean) if self.components is None else len(self.components)

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        if self.components is None:
            return embeddings.astype(np.float32)
        return ((embeddings - self.mean) @ self.components.T).astype(np.float32)

    def save(self, path: Path) -> None:
        components = np.zeros((0,)) if self.components is None else self.components
        with open(path, "wb") as handle:
            np.savez(handle, method=self.method, mean=self.mean, components=components,
                     explained_variance=self.explained_variance)

    @classmethod
    def load(cls, path: Path) -> "Reduction":
        with np.load(path, allow_pickle=False) as data:
            components = data["components"]
            return cls(str(data["method"]), data["mean"], None if components.size == 0 else components,
                       float(data["explained_variance"]))


def fit_reduction(config: ReductionConfig, train_embeddings: np.ndarray, seed: int) -> Reduction:
    embeddings = train_embeddings.astype(np.float64)
    if config.method == "none":
        return Reduction("none", np.zeros(embeddings.shape[1]), None, 1.0)
    from sklearn.decomposition import PCA

    limit = min(embeddings.shape)
    if config.dim > limit:
        raise RecipeError(
            f"key 'reduction.dim': {config.dim} exceeds what PCA can fit here "
            f"(min of {embeddings.shape[0]} training windows and {embeddings.shape[1]} teacher dims = {limit})"
        )
    pca = PCA(n_components=config.dim, svd_solver="full", random_state=seed).fit(embeddings)
    return Reduction("pca", pca.mean_, pca.components_, float(pca.explained_variance_ratio_.sum()))
