import numpy as np
import pytest

from edgekd.configs import ReductionConfig
from edgekd.errors import RecipeError
from edgekd.reduction import Reduction, fit_reduction


def _low_rank(n=200, d=40, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) * 5 + 0.01 * rng.standard_normal((n, d))


def test_pca_keeps_the_variance_of_a_low_rank_teacher(tmp_path):
    x = _low_rank()
    reduction = fit_reduction(ReductionConfig(method="pca", dim=3), x, seed=0)
    assert reduction.explained_variance > 0.999
    z = reduction.transform(x)
    assert z.shape == (200, 3)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-6 * np.abs(z).max())
    # projecting back recovers the data: the components span the teacher's subspace
    np.testing.assert_allclose(z @ reduction.components + reduction.mean, x, atol=0.1)
    reduction.save(tmp_path / "r.npz")
    loaded = Reduction.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(loaded.transform(x), z)


def test_no_reduction_is_identity():
    x = _low_rank()
    reduction = fit_reduction(ReductionConfig(method="none"), x, seed=0)
    assert reduction.dim == 40
    np.testing.assert_allclose(reduction.transform(x), x.astype(np.float32))


def test_dimension_larger_than_data_is_a_recipe_error():
    with pytest.raises(RecipeError, match="reduction.dim"):
        fit_reduction(ReductionConfig(method="pca", dim=50), _low_rank(n=10), seed=0)


def test_sampling_strategies():
    from edgekd.reduction import select_sample

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.01, (90, 4)), rng.normal(5, 0.01, (10, 4))])  # a big and a small cluster
    groups = ["a"] * 90 + ["b"] * 10
    loudness = np.linspace(-60, 0, 100)
    def pick(sample, **kw):
        return select_sample(ReductionConfig(sample=sample, sample_size=10), len(x), 0, embeddings=lambda: x, **kw)
    assert len(set(pick("random"))) == 10
    stratified = pick("stratified", groups=groups)
    assert sum(i >= 90 for i in stratified) == 5  # equal shares per group
    assert sum(i >= 90 for i in pick("diverse")) >= 1  # k-means++ reaches the small cluster
    loudest = ReductionConfig(sample="loudness", sample_size=10)
    loud = np.mean([select_sample(loudest, len(x), s, loudness=loudness).mean() for s in range(20)])
    assert loud > 55  # louder (later) windows are preferred; uniform would average 49.5
    np.testing.assert_array_equal(pick("diverse"), pick("diverse"))  # deterministic for a seed
    reduction = fit_reduction(ReductionConfig(dim=2, sample="diverse", sample_size=20), x, seed=0)
    assert reduction.dim == 2 and 0 < reduction.explained_variance <= 1


@pytest.mark.slow
def test_umap_reduction_stored_as_arrays(tmp_path):
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (60, 12)), rng.normal(8, 1, (60, 12))])
    reduction = fit_reduction(ReductionConfig(method="umap", dim=2), x, seed=0)
    assert reduction.method == "umap" and reduction.dim == 2
    z = reduction.transform(x)
    np.testing.assert_allclose(z, reduction.anchor_coords, atol=1e-4)  # fitted points keep their coordinates
    new = reduction.transform(x[:5] + 0.01)
    assert np.isfinite(new).all() and np.abs(new - z[:5]).max() < 1.0
    # the two clusters stay apart after the reduction
    assert np.linalg.norm(z[:60].mean(0) - z[60:].mean(0)) > 3 * z[:60].std(0).max()
    reduction.save(tmp_path / "u.npz")
    np.testing.assert_array_equal(Reduction.load(tmp_path / "u.npz").transform(x[:7]), reduction.transform(x[:7]))
