"""SpRAy at scale: the approximate neighbour search against the exact one, the same clusters
either way, labels from the eigenvectors SpRAy already has, and no stray warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from chexplain.audit.neighbours import approximate_knn, exact_knn, knn_method
from chexplain.audit.spray import SprayConfig, cluster_qr, features, spray
from chexplain.errors import ChexplainError

from .synthetic import planted_maps


def _recall(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(p) & set(q)) / len(p) for p, q in zip(a, b)]))


def _blobs(n: int, seed: int = 0, side: int = 32) -> np.ndarray:
    """Maps of one blob each, at a random place and width: a 3-parameter family (the case
    a projection on principal components suits), plus faint noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    c, w = rng.uniform(0.1, 0.9, (n, 2)), rng.uniform(0.04, 0.1, n)
    maps = np.exp(-(((y[None] - c[:, 0, None, None]) ** 2 + (x[None] - c[:, 1, None, None]) ** 2)
                    / (2 * w[:, None, None] ** 2)))
    return maps + 0.001 * rng.standard_normal(maps.shape)


def test_knn_option_is_checked_and_auto_switches_at_5000():
    with pytest.raises(ChexplainError, match=r"^unknown knn 'fast'; choose from auto, exact, approximate$"):
        SprayConfig(knn="fast").check()
    assert knn_method("auto", 5000) == "exact" and knn_method("auto", 5001) == "approximate"
    assert knn_method("exact", 10**6) == "exact" and knn_method("approximate", 10) == "approximate"


def test_approximate_neighbours_match_the_exact_ones():
    x = features(_blobs(3000), 32)
    exact, approx = exact_knn(x, 10), approximate_knn(x, 10)
    assert approx.shape == (3000, 10) and not (approx == np.arange(3000)[:, None]).any()
    assert _recall(exact, approx) > 0.99
    d = lambda idx: np.sort(((x[:, None] - x[idx]) ** 2).sum(-1), 1)  # noqa: E731
    found = d(approx)[:, 0] <= d(exact)[:, 0] * (1 + 1e-4) + 1e-12
    assert found.mean() > 0.99  # the nearest neighbour, up to float32 ties
    again = approximate_knn(x, 10)
    assert np.array_equal(again, approx)  # one-thread graph: reproducible


def test_approximate_neighbours_of_duplicates_never_include_the_map_itself():
    base = features(_blobs(40, seed=1), 32)
    x = np.concatenate([base] * 30)  # 30 copies of 40 maps: neighbours at distance 0 tie
    idx = approximate_knn(x, 10)
    assert not (idx == np.arange(len(x))[:, None]).any()
    assert np.all(np.abs(x[idx] - x[:, None]).max(-1) == 0)  # every neighbour a copy


def test_approximate_spray_recovers_planted_strategies_without_warnings():
    maps, truth = planted_maps((1800, 1500, 1500, 1200), seed=4)  # 6,000 maps
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. scikit-learn's "Graph is not fully connected"
        res = spray(maps, SprayConfig(knn="approximate"))
    assert res.n_clusters == 4 and res.embedding_kind == "spectral"
    assert adjusted_rand_score(truth, res.labels) >= 0.95
    assert np.bincount(res.labels).tolist() == [1800, 1500, 1500, 1200]


def test_exact_spray_of_a_disconnected_graph_emits_no_warning(recwarn):
    maps, truth = planted_maps((40, 30, 20), seed=3)  # three components of the kNN graph
    res = spray(maps, SprayConfig(embedding="spectral"))
    assert adjusted_rand_score(truth, res.labels) == 1.0
    assert not [str(w.message) for w in recwarn.list]


def test_cluster_qr_matches_scikit_learn_and_ignores_a_rotation():
    from sklearn.cluster._spectral import cluster_qr as reference  # the same algorithm, private

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 500)
    v = np.eye(4)[truth] + 0.2 * rng.standard_normal((500, 4))
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    labels = cluster_qr(v)
    assert np.array_equal(labels, reference(v))
    assert adjusted_rand_score(labels, cluster_qr(v @ q)) == 1.0
    assert adjusted_rand_score(truth, labels) > 0.9
