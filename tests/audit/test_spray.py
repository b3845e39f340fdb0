"""SpRAy on planted relevance maps: the eigengap finds the strategies, clusters recover them,
and CoRelAy's SpRAy pipeline on the same maps agrees (adjusted Rand index)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from chexplain.audit.spray import (SprayConfig, eigengap, eigengaps, features, knn_affinity,
                                   laplacian_spectrum, normalise_maps, spray)

from .synthetic import planted_maps


def test_normalise_positive_relevance_sums_to_one():
    maps = np.random.default_rng(0).standard_normal((5, 8, 8))
    maps[4] = -np.abs(maps[4])  # no positive relevance
    n = normalise_maps(maps)
    assert np.allclose(np.clip(n[:4], 0, None).sum((1, 2)), 1.0) and not n[4].any()
    f = features(maps[:4], 4)  # sum pooling keeps the sums
    assert f.shape == (4, 16) and np.allclose(f.sum(1), n[:4].sum((1, 2)))


def test_laplacian_spectrum_of_disconnected_graph_and_eigengap():
    # two 5-cliques and a 4-clique: three zero eigenvalues, then 5/4
    blocks = [np.ones((m, m)) - np.eye(m) for m in (5, 5, 4)]
    a = sp.csr_matrix(sp.block_diag(blocks))
    lam, _ = laplacian_spectrum(a, 6)
    assert np.allclose(lam[:3], 0, atol=1e-9)
    assert lam[3] == pytest.approx(5 / 4)  # λ2 of K_m is m/(m-1): K5 gives the smallest
    assert eigengap(lam, 8) == 3 and eigengap(lam, 8, "absolute") == 3
    spectrum = np.array([0, 0.02, 0.2, 0.3, 0.6, 0.65])
    assert eigengap(spectrum, 8, "absolute") == 4  # 0.6 − 0.3 is the largest step …
    assert eigengap(spectrum, 8) == 2  # … but 0.02 → 0.2 the largest relative one
    assert np.allclose(eigengaps(spectrum, 8, "absolute"), [0.18, 0.1, 0.3, 0.05])


@pytest.mark.parametrize("sizes", [(40, 30, 20), (50, 25), (30, 30, 30, 30)])
def test_spray_recovers_planted_strategies(sizes):
    maps, truth = planted_maps(sizes, seed=len(sizes))
    res = spray(maps, SprayConfig(seed=0))
    assert res.n_clusters == len(sizes)
    assert adjusted_rand_score(truth, res.labels) > 0.95
    assert np.bincount(res.labels).tolist() == sorted(np.bincount(truth).tolist(), reverse=True)
    for c in range(res.n_clusters):  # the prototype peaks where its members' strategy lives
        members = truth[res.labels == c]
        s = np.bincount(members).argmax()
        peak = np.unravel_index(res.prototypes[c].argmax(), res.prototypes[c].shape)
        from .synthetic import CENTRES

        assert np.abs(np.array(peak) / 32 - CENTRES[s]).max() < 0.1
        assert all(truth[i] == s for i in res.typical[c])
    assert res.embedding.shape == (len(truth), 2) and res.embedding_kind == "tsne"
    again = spray(maps, SprayConfig(seed=0))
    assert np.array_equal(again.labels, res.labels) and np.array_equal(again.embedding, res.embedding)


def test_affinity_is_symmetric_knn():
    x = np.random.default_rng(1).standard_normal((30, 4))
    a = knn_affinity(x, 5)
    assert (a != a.T).nnz == 0 and a.diagonal().sum() == 0
    assert np.all(np.asarray((a > 0).sum(1)).ravel() >= 5)
    assert set(np.unique(a.data)) <= {0.5, 1.0}


def test_against_corelay_pipeline():
    """CoRelAy 1.0's SpectralClustering pipeline (Euclidean distances, SparseKNN, symmetric
    normalised Laplacian, eigen-decomposition, k-means) on our normalised maps."""
    corelay = pytest.importorskip("corelay")
    from corelay.pipeline.spectral import SpectralClustering
    from corelay.processor.affinity import SparseKNN
    from corelay.processor.clustering import KMeans
    from corelay.processor.embedding import EigenDecomposition
    from corelay.processor.laplacian import SymmetricNormalLaplacian

    maps, truth = planted_maps((45, 30, 25), seed=7, noise=0.08)
    x = features(maps, 32)
    ours = spray(maps, SprayConfig(neighbours=10, seed=0))
    pipe = SpectralClustering(
        affinity=SparseKNN(n_neighbors=10, symmetric=True),
        laplacian=SymmetricNormalLaplacian(),
        # a fixed start vector: ARPACK's own is random, and on a graph with one component per
        # cluster Lanczos from a random start misses copies of the eigenvalue 0 in some runs
        embedding=EigenDecomposition(n_eigval=ours.n_clusters, is_output=True,
                                     kwargs={"v0": np.random.default_rng(0).random(len(x))}),
        clustering=KMeans(n_clusters=ours.n_clusters, is_output=True,
                          kwargs={"n_init": 10, "random_state": 0}))
    (eigval, _), theirs = pipe(x)
    ours_lam = ours.eigenvalues[: ours.n_clusters]
    assert np.allclose(np.sort(eigval), ours_lam, atol=1e-6)  # the same Laplacian
    ari = adjusted_rand_score(theirs, ours.labels)
    print(f"CoRelAy {corelay.__version__ if hasattr(corelay, '__version__') else '1.0'}: "
          f"ARI(ours, CoRelAy) = {ari:.3f}; ARI(CoRelAy, truth) = "
          f"{adjusted_rand_score(truth, theirs):.3f}")
    assert ari > 0.95


def test_mirror_folds_a_strategy_on_either_side():
    """A corner marker on the left or the right: two clusters, one with ``mirror=True``."""
    maps, truth = planted_maps((40, 40), seed=4)
    side = np.random.default_rng(0).random(len(maps)) < 0.5
    maps = np.where((truth == 0)[:, None, None] & side[:, None, None], maps[:, :, ::-1], maps)
    plain = spray(maps, SprayConfig(embedding="spectral"))
    folded = spray(maps, SprayConfig(embedding="spectral", mirror=True))
    assert plain.n_clusters == 3 and folded.n_clusters == 2
    assert adjusted_rand_score(truth, folded.labels) > 0.95
    assert np.array_equal(folded.flipped[truth == 0], side[truth == 0])
