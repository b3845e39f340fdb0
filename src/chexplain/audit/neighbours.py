"""The k nearest neighbours of SpRAy's affinity (Euclidean distance between pooled maps).

``exact``: every pairwise distance (scikit-learn's brute force), quadratic in the number of
maps. ``approximate``: candidates from a graph index and exact distances among them, close to
linear in the number of maps:

1. principal components: the maps are projected onto the ``dims`` leading eigenvectors of
   their covariance (computed block by block, an exact eigendecomposition, no random start);
2. a hierarchical navigable small-world graph (HNSW; Malkov & Yashunin 2020, IEEE TPAMI
   42:824) over the projections (faiss ``IndexHNSWFlat``) returns ``candidates`` × k
   neighbours per map; it is built on one thread (faiss draws each point's level from a
   generator with a fixed seed, but parallel insertion orders vary between runs);
3. the candidates are ranked again by their distance in the full space (float32) and the k
   nearest kept, so that the projection only chooses whom to compare, never the distance.

Maps whose search lost its way (it found neither the map itself nor a duplicate of it: HNSW
can strand a query in a cluster far from its own) or whose candidates hold fewer than k others
are searched exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

KNN_METHODS = ("auto", "exact", "approximate")
EXACT_UP_TO = 5000  #: ``auto`` searches exactly up to this many maps


@dataclass(frozen=True)
class ApproximateKnn:
    """Options of the approximate search (see the module doc)."""

    dims: int = 64  #: principal components the index is built on
    candidates: int = 3  #: candidates per neighbour, ranked again by the exact distance
    links: int = 16  #: HNSW's M, links per node
    ef_construction: int = 40  #: HNSW's candidate list while building
    block: int = 4096  #: rows per block of the covariance, projection and re-ranking


def knn_method(method: str, n: int) -> str:
    """``exact`` or ``approximate`` for ``n`` maps (``auto``: exact up to :data:`EXACT_UP_TO`)."""
    if method == "auto":
        return "exact" if n <= EXACT_UP_TO else "approximate"
    return method


def exact_knn(x: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each row's k nearest other rows (brute force, ascending distance)."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(x)
    _, idx = nn.kneighbors(x)
    return _drop_self(idx, k)


def _drop_self(idx: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """The first k entries of each row of ``idx`` (the neighbours of ``rows``, default all)
    that are not the row itself (it may be absent, or not first among duplicates)."""
    rows = np.arange(len(idx)) if rows is None else np.asarray(rows)
    keep = idx != rows[:, None]
    keep &= np.cumsum(keep, 1) <= k
    return idx[keep].reshape(len(idx), k)


def principal_projection(x: np.ndarray, dims: int, block: int = 4096) -> np.ndarray:
    """(N, dims) float32 coordinates of the centred rows on the leading eigenvectors of their
    covariance Σ = (X − μ)ᵀ(X − μ) / N (in float32: the projection only chooses candidates)."""
    n, d = x.shape
    mu = x.mean(0).astype(np.float32)
    cov = np.zeros((d, d), dtype=np.float64)
    for s in range(0, n, block):
        c = x[s:s + block].astype(np.float32) - mu
        cov += c.T @ c
    # float32: the projection only chooses candidates, and LAPACK's float64 solver took 4-5 s
    # for the 1024 × 1024 covariance of 32 × 32 maps on 2 busy cores (float32: under 1 s)
    _, vec = torch.linalg.eigh(torch.from_numpy(cov / n).float())
    basis = np.ascontiguousarray(vec.numpy()[:, ::-1][:, :min(dims, d)], dtype=np.float32)
    out = np.empty((n, basis.shape[1]), dtype=np.float32)
    for s in range(0, n, block):
        out[s:s + block] = (x[s:s + block].astype(np.float32) - mu) @ basis
    return out


def approximate_knn(x: np.ndarray, k: int, opts: ApproximateKnn = ApproximateKnn()) -> np.ndarray:
    """(N, k) indices of each row's k nearest other rows (see the module doc)."""
    import faiss  # imported here: only large classes need it
    from threadpoolctl import threadpool_limits

    n = len(x)
    y = np.ascontiguousarray(principal_projection(x, opts.dims, opts.block))
    m = min(n, opts.candidates * k + 1)
    threads = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)  # a reproducible graph (see the module doc)
        index = faiss.IndexHNSWFlat(y.shape[1], opts.links)
        index.hnsw.efConstruction = opts.ef_construction
        index.add(y)
        faiss.omp_set_num_threads(threads)  # each query is searched on its own: any thread count
        index.hnsw.efSearch = max(2 * m, 32)
        found, cand = index.search(y, m)
    finally:
        faiss.omp_set_num_threads(threads)
    del index, y
    rows = np.arange(n)
    # the index holds every query, so a search that returns neither the query itself nor a
    # duplicate of it (distance 0) lost its way (HNSW can strand a query in another cluster)
    lost = ~((cand == rows[:, None]).any(1) | (found[:, 0] <= 0))
    valid = (cand >= 0) & (cand != rows[:, None])
    safe = np.where(valid, cand, 0)
    x32 = x.astype(np.float32)  # half the bytes gathered; distances of ~1e-5 keep 6 digits
    sq = np.einsum("ij,ij->i", x32, x32)
    out = np.empty((n, k), dtype=np.int64)
    step = max(1, opts.block // 8)
    with threadpool_limits(1):  # one small product per map: BLAS threads would only wait
        for s in range(0, n, step):
            r = slice(s, s + step)
            dot = np.matmul(x32[safe[r]], x32[r][:, :, None])[:, :, 0]  # (B, m) x_j · x_i
            dist = np.where(valid[r], sq[r, None] + sq[safe[r]] - 2.0 * dot, np.inf)
            order = np.argsort(dist, axis=1, kind="stable")[:, :k]
            out[r] = np.take_along_axis(cand[r], order, 1)
    redo = np.flatnonzero(lost | (valid.sum(1) < k))
    if len(redo):  # these rows against every row
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(x)
        _, idx = nn.kneighbors(x[redo])
        out[redo] = _drop_self(idx, k, redo)
    return out
