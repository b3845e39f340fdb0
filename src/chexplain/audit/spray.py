"""Spectral Relevance Analysis (SpRAy; Lapuschkin et al. 2019, Nat. Commun. 10:1096).

For the relevance maps of one class:

1. normalise each map so that its positive relevance sums to 1 (R / Σ max(R, 0));
2. downsize (sum pooling) to ``size`` × ``size`` and flatten;
3. a sparse k-nearest-neighbour affinity A (Euclidean distance, connectivity 1 per
   neighbour, symmetrised (A + Aᵀ) / 2, as CoRelAy's ``SparseKNN``); the neighbours are
   exact up to 5,000 maps and approximate beyond (``knn``; :mod:`chexplain.audit.neighbours`);
4. the eigenvalues 0 = λ₁ ≤ λ₂ ≤ … of the normalised Laplacian L = I − D^-½ A D^-½
   (``scipy.sparse.linalg.eigsh`` on D^-½ A D^-½); the number of clusters k is the
   eigengap's: argmax over 2 ≤ k ≤ ``max_clusters`` of the relative gap
   (λ_{k+1} − λ_k) / λ_{k+1} (default; on unweighted kNN graphs the absolute gap
   λ_{k+1} − λ_k often peaks inside the bulk of the spectrum, after the near-zero
   eigenvalues of the clusters) or of the absolute gap (``gap="absolute"``);
5. spectral clustering into k clusters: the first k eigenvectors of step 4 divided by
   √degree (those of the random-walk Laplacian I − D⁻¹A, Shi & Malik 2000; scikit-learn's
   ``spectral_embedding``) labelled by :func:`cluster_qr` (no random restarts), clusters
   renumbered by size (0 the largest);
6. a 2-D embedding: t-SNE of the maps (``tsne``) or the spectral embedding's first two
   non-trivial eigenvectors (``spectral``; ``auto``: t-SNE up to 2,000 maps);
7. per cluster the prototype (mean normalised map) and the most typical members (nearest to
   the cluster mean).

``mirror=True`` (our option, off by default as in the paper) first flips every map whose
positive relevance lies mostly in the image's right half, so that one strategy on either side
(a marker in the top-left or the top-right corner, an effusion at either base) forms one
cluster; ``flipped`` records which maps were flipped (prototypes are in the folded frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from ..errors import ChexplainError
from .neighbours import EXACT_UP_TO, KNN_METHODS, approximate_knn, exact_knn, knn_method

EMBEDDINGS = ("auto", "tsne", "spectral")
GAPS = ("relative", "absolute")


@dataclass(frozen=True)
class SprayConfig:
    """Options of :func:`spray`."""

    size: int = 32  #: side of the clustered maps
    neighbours: int = 10  #: k of the kNN affinity (at most N − 1)
    max_clusters: int = 8  #: the eigengap is searched in 2 … max_clusters
    n_clusters: int | None = None  #: fix k instead of the eigengap's
    n_eigenvalues: int = 16  #: eigenvalues reported (at least max_clusters + 1)
    gap: str = "relative"  #: eigengap: relative (λ_{k+1} − λ_k) / λ_{k+1} or absolute
    embedding: str = "auto"
    typical: int = 4  #: most typical members per cluster
    mirror: bool = False  #: fold left/right: a strategy on either side is one cluster
    seed: int = 0
    knn: str = "auto"  #: neighbours: exact, approximate or auto (exact up to 5,000 maps)

    def check(self) -> None:
        if self.embedding not in EMBEDDINGS:
            raise ChexplainError(f"unknown embedding {self.embedding!r}; choose from {', '.join(EMBEDDINGS)}")
        if self.gap not in GAPS:
            raise ChexplainError(f"unknown eigengap {self.gap!r}; choose from {', '.join(GAPS)}")
        if self.knn not in KNN_METHODS:
            raise ChexplainError(f"unknown knn {self.knn!r}; choose from {', '.join(KNN_METHODS)}")
        if self.neighbours < 1 or self.max_clusters < 2 or self.size < 2:
            raise ChexplainError("SpRAy needs neighbours >= 1, max_clusters >= 2 and size >= 2")
        if self.n_clusters is not None and self.n_clusters < 1:
            raise ChexplainError(f"n_clusters {self.n_clusters} must be at least 1")


@dataclass
class SprayResult:
    """The clustering of one class's maps."""

    labels: np.ndarray  #: (N,) cluster per map, 0 the largest
    eigenvalues: np.ndarray  #: ascending eigenvalues of the normalised Laplacian
    n_clusters: int
    embedding: np.ndarray  #: (N, 2)
    embedding_kind: str
    prototypes: np.ndarray  #: (k, size, size) mean normalised map per cluster
    typical: list[list[int]] = field(default_factory=list)  #: per cluster, indices into the maps
    features: np.ndarray | None = None  #: (N, size²) the clustered vectors
    flipped: np.ndarray | None = None  #: (N,) maps mirrored left/right before clustering
    note: str = ""  #: why the clustering is trivial (identical maps), else empty


def normalise_maps(maps: np.ndarray) -> np.ndarray:
    """(N, H, W) → each map divided by its sum of positive relevance (all-zero when it has none)."""
    out = np.array(maps, dtype=np.float64)  # a copy, scaled in place block by block
    flat = out.reshape(len(out), -1)
    for s in range(0, len(flat), 4096):  # no temporary of the whole set (100,000 maps: 0.8 GB)
        block = flat[s:s + 4096]
        pos = np.clip(block, 0, None).sum(1)
        block *= np.where(pos > 0, 1.0 / np.where(pos > 0, pos, 1.0), 0.0)[:, None]
    return out


def features(maps: np.ndarray, size: int) -> np.ndarray:
    """Normalised, sum-pooled to ``size`` × ``size``, flattened: (N, size²)."""
    from .pooling import sum_pool

    norm = normalise_maps(maps)
    if norm.shape[-1] != size or norm.shape[-2] != size:
        norm = sum_pool(torch.from_numpy(norm), size).double().numpy()
    return norm.reshape(len(norm), -1)


def knn_affinity(x: np.ndarray, k: int, method: str = "exact") -> sp.csr_matrix:
    """Symmetrised kNN connectivity (A + Aᵀ) / 2, without self-loops; ``method`` as
    :func:`chexplain.audit.neighbours.knn_method`."""
    k = min(k, len(x) - 1)
    find = exact_knn if knn_method(method, len(x)) == "exact" else approximate_knn
    cols = find(x, k).ravel()
    rows = np.repeat(np.arange(len(x)), k)
    a = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(x), len(x)))
    return ((a + a.T) / 2.0).tocsr()


def laplacian_spectrum(a: sp.csr_matrix, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` smallest eigenvalues of L = I − D^-½ A D^-½ (ascending) and their eigenvectors.

    Each connected component is solved on its own (Lanczos, as ``eigsh``, can miss copies of
    the eigenvalue 0 that a disconnected graph has once per component)."""
    from scipy.sparse.csgraph import connected_components

    n_all = a.shape[0]
    n = min(n, n_all)
    _, comp = connected_components(a, directed=False)
    vals, vecs = [], []
    for c in np.unique(comp):
        idx = np.flatnonzero(comp == c)
        lam, v = _component_spectrum(a[idx][:, idx], min(n, len(idx)), seed)
        full = np.zeros((n_all, len(lam)))
        full[idx] = v
        vals.append(lam)
        vecs.append(full)
    lam, vec = np.concatenate(vals), np.concatenate(vecs, 1)
    order = np.argsort(lam, kind="stable")[:n]
    return lam[order], vec[:, order]


def _component_spectrum(a: sp.csr_matrix, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.sparse.linalg import eigsh
    from threadpoolctl import threadpool_limits

    size = a.shape[0]
    deg = np.asarray(a.sum(1)).ravel()
    dinv = sp.diags(1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)))
    m = (dinv @ a @ dinv).tocsr()
    if size <= 200 or n >= size - 1:
        mu, vec = np.linalg.eigh(m.toarray())
        mu, vec = mu[::-1][:n], vec[:, ::-1][:, :n]
    else:
        v0 = np.random.default_rng(seed).uniform(-1, 1, size)
        # above EXACT_UP_TO maps a Lanczos basis of 3n vectors, not ARPACK's 2n + 1: the top of
        # a large kNN graph's spectrum is dense and the smaller basis restarts many times
        # (15 s against 3 s on a component of 25,000 maps)
        ncv = None if size <= EXACT_UP_TO else min(size, 3 * n)
        with threadpool_limits(1):  # BLAS threads on vectors this small only wait (1 s against
            mu, vec = eigsh(m, k=n, which="LA", v0=v0, tol=1e-8, ncv=ncv)  # 9-24 s on 2 busy cores)
        order = np.argsort(-mu)
        mu, vec = mu[order], vec[:, order]
    return np.clip(1.0 - mu, 0.0, 2.0), vec


def eigengaps(eigenvalues: np.ndarray, max_clusters: int, gap: str = "relative") -> np.ndarray:
    """The gap after λ_k for k = 2 … max_clusters (λ ascending, 1-indexed): λ_{k+1} − λ_k,
    divided by λ_{k+1} for ``relative``."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    top = min(max_clusters, len(lam) - 1)
    nxt, cur = lam[2:top + 1], lam[1:top]
    g = nxt - cur
    return g / np.maximum(nxt, 1e-12) if gap == "relative" else g


def eigengap(eigenvalues: np.ndarray, max_clusters: int, gap: str = "relative") -> int:
    """The number of clusters: 2 + argmax of :func:`eigengaps` (1 with fewer than 3 eigenvalues)."""
    g = eigengaps(eigenvalues, max_clusters, gap)
    return int(np.argmax(g) + 2) if len(g) else 1


def cluster_qr(vectors: np.ndarray) -> np.ndarray:
    """Labels of the rows of an (N, k) spectral embedding by column-pivoted QR (Damle, Minden
    & Ying 2019, Information and Inference 8:181): the pivots choose k representative rows, the
    polar factor U Vᵀ of their (k, k) block rotates the embedding towards the coordinate axes,
    and each row takes the axis of its largest absolute coordinate. Invariant to a rotation of
    the embedding (e.g. another basis of a repeated eigenvalue's eigenspace)."""
    from scipy.linalg import qr, svd

    k = vectors.shape[1]
    _, piv = qr(vectors.T, pivoting=True, mode="r")
    u, _, vt = svd(vectors[piv[:k]].T)
    return np.abs(vectors @ (u @ vt)).argmax(axis=1)


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters by size (descending), ties by first member."""
    ids, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True,
                                            return_counts=True)
    order = sorted(range(len(ids)), key=lambda i: (-counts[i], first[i]))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    return rank[inverse.ravel()]


def spray(maps: np.ndarray, config: SprayConfig | None = None) -> SprayResult:
    """SpRAy on ``maps`` (N, H, W); see the module doc."""
    cfg = config or SprayConfig()
    cfg.check()
    n = len(maps)
    if n < 3:
        raise ChexplainError(f"SpRAy needs at least 3 maps, got {n}")
    x = features(maps, cfg.size)
    flipped = np.zeros(n, dtype=bool)
    if cfg.mirror:
        img = x.reshape(n, cfg.size, cfg.size)
        pos = np.clip(img, 0, None)
        half = cfg.size // 2
        flipped = pos[:, :, cfg.size - half:].sum((1, 2)) > pos[:, :, :half].sum((1, 2))
        img = np.where(flipped[:, None, None], img[:, :, ::-1], img)
        x = img.reshape(n, -1)
    if not np.ptp(x, axis=0).any():  # identical maps: no neighbourhood, t-SNE divides by 0
        what = "without positive relevance" if not x.any() else "identical after normalisation"
        return SprayResult(np.zeros(n, np.int64), np.zeros(1), 1, np.zeros((n, 2)), "none",
                           x[:1].reshape(1, cfg.size, cfg.size).copy(),
                           [list(range(min(cfg.typical, n)))], x, flipped,
                           note=f"the {n} maps are {what}: one cluster, nothing to separate")
    a = knn_affinity(x, cfg.neighbours, cfg.knn)
    k = max(1, min(cfg.n_clusters or 1, n - 1))
    lam, vec = laplacian_spectrum(a, max(cfg.n_eigenvalues, cfg.max_clusters + 1, k), cfg.seed)
    k = cfg.n_clusters or eigengap(lam, cfg.max_clusters, cfg.gap)
    k = max(1, min(k, n - 1, vec.shape[1]))
    deg = np.asarray(a.sum(1)).ravel()
    scaled = vec / np.sqrt(np.where(deg > 0, deg, 1.0))[:, None]  # D^-½ u (step 5)
    labels = np.zeros(n, dtype=np.int64) if k == 1 else _by_size(cluster_qr(scaled[:, :k]))
    kind = cfg.embedding if cfg.embedding != "auto" else ("tsne" if n <= 2000 else "spectral")
    if kind == "tsne" and n >= 5 and len(np.unique(x, axis=0)) >= 3:  # t-SNE's PCA start needs a plane
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # Barnes-Hut's OpenMP threads only wait on a busy machine
            emb = TSNE(2, perplexity=float(min(30.0, (n - 1) / 3.0)), init="pca",
                       random_state=cfg.seed).fit_transform(x.astype(np.float32))
    else:
        kind = "spectral"
        emb = scaled[:, 1:3]
    k_found = int(labels.max()) + 1
    protos = np.stack([x[labels == c].mean(0) for c in range(k_found)]).reshape(k_found, cfg.size, cfg.size)
    typical = []
    for c in range(k_found):
        members = np.flatnonzero(labels == c)
        d = ((x[members] - x[members].mean(0)) ** 2).sum(1)
        typical.append([int(members[j]) for j in np.argsort(d, kind="stable")[: cfg.typical]])
    return SprayResult(labels, lam, k_found, np.asarray(emb, dtype=np.float64), kind, protos,
                       typical, x, flipped)
