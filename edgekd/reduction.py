"""The reduction φ of teacher embeddings (SEA): PCA (default), UMAP (the `umap` extra) or none, fitted on a sample
of the training windows."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Protocol

import numpy as np

from edgekd.configs import ReductionConfig
from edgekd.errors import EdgekdError, RecipeError

_UMAP_NEIGHBOURS = 15


class Rows(Protocol):
    """An (n, dim) float32 array, or anything indexed like one (the teacher cache's rows, read on request)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index) -> np.ndarray: ...


@dataclass
class Reduction:
    method: str
    mean: np.ndarray  # (D,)
    components: np.ndarray | None  # PCA: (k, D) rows of the projection; None otherwise
    explained_variance: float  # PCA: fraction of the teacher's variance the k dims keep; NaN for UMAP
    anchors: np.ndarray | None = None  # UMAP: the teacher embeddings it was fitted on (n, D)...
    anchor_coords: np.ndarray | None = None  # ...and their UMAP coordinates (n, k)

    @property
    def dim(self) -> int:
        if self.anchor_coords is not None:
            return self.anchor_coords.shape[1]
        return len(self.mean) if self.components is None else len(self.components)

    def finite(self) -> bool:
        """Whether every array it applies is finite (explained_variance is NaN for UMAP by definition)."""
        arrays = (self.mean, self.components, self.anchors, self.anchor_coords)
        return all(np.isfinite(array).all() for array in arrays if array is not None)

    def transform(self, embeddings: Rows, chunk: int = 65536) -> np.ndarray:
        """φ of every row, read and reduced chunk by chunk: neither the rows (cache rows stay on disk) nor the float64
        intermediates are ever all in memory."""
        if len(embeddings) <= chunk:
            return self._transform(np.asarray(embeddings[:]))
        return np.concatenate([self._transform(embeddings[i : i + chunk]) for i in range(0, len(embeddings), chunk)])

    def _transform(self, embeddings: np.ndarray) -> np.ndarray:
        if self.anchors is not None:
            return self._interpolate(embeddings)
        if self.components is None:
            return embeddings.astype(np.float32)
        return ((embeddings - self.mean) @ self.components.T).astype(np.float32)

    def _interpolate(self, embeddings: np.ndarray) -> np.ndarray:
        """UMAP coordinates of new points: the inverse-distance average of their nearest fitted points (how UMAP
        itself starts its transform), so the reduction is stored as plain arrays, not a pickled model; fitted points
        map to their own coordinates."""
        from sklearn.neighbors import NearestNeighbors

        k = min(_UMAP_NEIGHBOURS, len(self.anchors))
        distance, index = NearestNeighbors(n_neighbors=k).fit(self.anchors).kneighbors(embeddings)
        weights = 1.0 / np.maximum(distance, 1e-12)
        weights /= weights.sum(axis=1, keepdims=True)
        return (weights[:, :, None] * self.anchor_coords[index]).sum(axis=1).astype(np.float32)

    def save(self, handle: BinaryIO) -> None:
        """Plain arrays (.npz), loadable without pickles."""
        empty = np.zeros((0,))
        np.savez(handle, method=self.method, mean=self.mean,
                 components=empty if self.components is None else self.components,
                 explained_variance=self.explained_variance,
                 anchors=empty if self.anchors is None else self.anchors,
                 anchor_coords=empty if self.anchor_coords is None else self.anchor_coords)

    @classmethod
    def load(cls, path: Path) -> "Reduction":
        with np.load(path, allow_pickle=False) as data:
            def optional(key: str) -> np.ndarray | None:
                return data[key] if key in data and data[key].size else None

            return cls(str(data["method"]), data["mean"], optional("components"), float(data["explained_variance"]),
                       optional("anchors"), optional("anchor_coords"))


def select_sample(config: ReductionConfig, count: int, seed: int, groups: list[str] | None = None,
                  loudness: np.ndarray | None = None, embeddings: Callable[[], np.ndarray] | None = None
                  ) -> np.ndarray:
    """Indices, among `count` candidate windows, of those the reduction is fitted on:
    random (uniform); stratified (an equal share per sensor/source/group); loudness (probability rising with each
    window's loudness rank within its group); diverse (k-means++ seeding on the candidates' teacher embeddings,
    which `embeddings()` reads: the only strategy that needs them all)."""
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
    embeddings = embeddings()
    chosen = [int(rng.integers(count))]  # diverse: k-means++ seeding (D² sampling)
    distance = ((embeddings - embeddings[chosen[0]]) ** 2).sum(1)
    while len(chosen) < size:
        probabilities = distance / distance.sum() if distance.sum() > 0 else None
        nxt = int(rng.choice(count, p=probabilities))
        chosen.append(nxt)
        distance = np.minimum(distance, ((embeddings - embeddings[nxt]) ** 2).sum(1))
        distance[chosen] = 0
    return np.sort(np.asarray(chosen))


def fit_reduction(config: ReductionConfig, embeddings: Rows, seed: int, groups: list[str] | None = None,
                  loudness: np.ndarray | None = None, rows: np.ndarray | None = None) -> Reduction:
    """φ fitted on a sample of `rows` of `embeddings` (every row when None; `groups` and `loudness` are per row of
    `rows`): only the sample is read."""
    rows = np.arange(len(embeddings)) if rows is None else rows
    sample = select_sample(config, len(rows), seed, groups, loudness, lambda: embeddings[rows])
    embeddings = embeddings[rows[sample]].astype(np.float64)
    if config.method == "none":
        return Reduction("none", np.zeros(embeddings.shape[1]), None, 1.0)
    if config.method == "umap":
        return _fit_umap(config, embeddings, seed)
    from sklearn.decomposition import PCA

    limit = min(embeddings.shape)
    if config.dim > limit:
        raise RecipeError(
            f"key 'reduction.dim': {config.dim} exceeds what PCA can fit here "
            f"(min of {embeddings.shape[0]} training windows and {embeddings.shape[1]} teacher dims = {limit})"
        )
    pca = PCA(n_components=config.dim, svd_solver="full", random_state=seed).fit(embeddings)
    return Reduction("pca", pca.mean_, pca.components_, float(pca.explained_variance_ratio_.sum()))


def _fit_umap(config: ReductionConfig, embeddings: np.ndarray, seed: int) -> Reduction:
    try:
        import umap
    except ImportError:
        raise EdgekdError("key 'reduction.method': 'umap' needs umap-learn: pip install 'edgekd[umap]'") from None
    if config.dim >= len(embeddings) - 1:
        raise RecipeError(f"key 'reduction.dim': {config.dim} is too large for UMAP on {len(embeddings)} windows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap-learn warns that a random_state disables its parallelism
        model = umap.UMAP(n_components=config.dim, n_neighbors=min(_UMAP_NEIGHBOURS, len(embeddings) - 1),
                          random_state=seed)
        coords = model.fit_transform(embeddings)
    return Reduction("umap", embeddings.mean(0), None, float("nan"), embeddings.astype(np.float32),
                     coords.astype(np.float32))
