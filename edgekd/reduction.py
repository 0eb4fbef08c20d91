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


def select_sample(config: ReductionConfig, embeddings: np.ndarray, seed: int, groups: list[str] | None = None,
                  loudness: np.ndarray | None = None) -> np.ndarray:
    """Indices of the windows the reduction is fitted on:
    random (uniform); stratified (an equal share per sensor/source/group); loudness (probability rising with each
    window's loudness rank within its group); diverse (k-means++ seeding on the teacher embeddings)."""
    count = len(embeddings)
    size = min(config.sample_size or count, count)
    rng = np.random.default_rng(seed)
    if size == count:
        return np.arange(count)
    if config.sample == "random" or (config.sample == "stratified" and not groups):
        return np.sort(rng.choice(count, size, replace=False))
    if config.sample == "stratified":
        by_group: dict[str, list[int]] = {}
        for index, group in enumerate(groups):
            by_group.setdefault(group, []).append(index)
        pools = [list(rng.permutation(members)) for members in by_group.values()]
        chosen: list[int] = []
        while len(chosen) < size:  # round-robin over groups: equal shares until small groups run out
            for pool in pools:
                if pool and len(chosen) < size:
                    chosen.append(pool.pop())
        return np.sort(np.asarray(chosen))
    if config.sample == "loudness":
        ranks = np.zeros(count)
        for group in set(groups or [""]):
            members = np.array([i for i in range(count) if (groups[i] if groups else "") == group])
            ranks[members] = np.argsort(np.argsort(loudness[members])) + 1  # 1 = quietest of its group
        return np.sort(rng.choice(count, size, replace=False, p=ranks / ranks.sum()))
    chosen = [int(rng.integers(count))]  # diverse: k-means++ seeding (D² sampling)
    distance = ((embeddings - embeddings[chosen[0]]) ** 2).sum(1)
    while len(chosen) < size:
        probabilities = distance / distance.sum() if distance.sum() > 0 else None
        nxt = int(rng.choice(count, p=probabilities))
        chosen.append(nxt)
        distance = np.minimum(distance, ((embeddings - embeddings[nxt]) ** 2).sum(1))
        distance[chosen] = 0
    return np.sort(np.asarray(chosen))


def fit_reduction(config: ReductionConfig, train_embeddings: np.ndarray, seed: int, groups: list[str] | None = None,
                  loudness: np.ndarray | None = None) -> Reduction:
    sample = select_sample(config, train_embeddings, seed, groups, loudness)
    embeddings = train_embeddings[sample].astype(np.float64)
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
