"""ROAD's noisy linear imputation (Rong et al. 2022, "A Consistent and Efficient Evaluation
Strategy for Attribution Methods", ICML: "noisy linear imputation").

Removed pixels are not replaced by a fixed image but imputed from the pixels that remain, so
that the perturbed image leaks no information about the mask's shape. Each removed pixel
x_i is the weighted mean of its 8 neighbours N(i) inside the image::

    x_i = Σ_{j∈N(i)} w_ij x_j / Σ_{j∈N(i)} w_ij,   w = 1/6 (direct), 1/12 (diagonal)

where known neighbours enter with their values and removed ones as unknowns: one sparse
linear system over all removed pixels of an image, the same matrix for every channel, solved
with the known pixels fixed. Neighbours outside the image are left out and the remaining
weights renormalised (the reference implementation's choice). Then Gaussian noise
N(0, σ²) is added to the imputed pixels only; σ = 0.01 absolute, in the units of the
model's input, as the reference implementation's default (``NoisyLinearImputer(noise=0.01)``).

With every pixel removed no known value anchors the system (it is singular): the imputed
image is then the image's mean per channel plus the same noise.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

#: σ of the Gaussian noise added to imputed pixels (the reference implementation's default).
ROAD_NOISE = 0.01

#: (row offset, column offset) → weight of the 8 neighbours (Rong et al. 2022).
NEIGHBOUR_WEIGHTS = (((-1, 0), 1 / 6), ((1, 0), 1 / 6), ((0, -1), 1 / 6), ((0, 1), 1 / 6),
                     ((-1, -1), 1 / 12), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((1, 1), 1 / 12))


def linear_imputation(img: np.ndarray, gone: np.ndarray) -> np.ndarray:
    """``img`` (C, H, W) with the pixels where ``gone`` (H, W) is true replaced by the
    weighted-mean system above (no noise); the other pixels are returned unchanged (float64)."""
    img = np.asarray(img, dtype=np.float64)
    c, h, w = img.shape
    out = img.copy()
    unknown = np.flatnonzero(gone)
    n = unknown.size
    if n == 0:
        return out
    if n == h * w:
        out[:] = img.mean(axis=(1, 2), keepdims=True)
        return out
    flat = img.reshape(c, -1)
    var = np.full(h * w, -1)
    var[unknown] = np.arange(n)
    row, col = unknown // w, unknown % w
    diag = np.zeros(n)
    rhs = np.zeros((n, c))
    ai, aj, av = [], [], []
    for (dr, dc), wt in NEIGHBOUR_WEIGHTS:
        r, q = row + dr, col + dc
        inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
        diag[inside] += wt  # renormalisation: only neighbours inside the image count
        eq = np.flatnonzero(inside)
        nb = r[inside] * w + q[inside]
        free = var[nb] >= 0
        ai.append(eq[free])
        aj.append(var[nb[free]])
        av.append(np.full(int(free.sum()), -wt))
        np.add.at(rhs, eq[~free], wt * flat[:, nb[~free]].T)
    ai.append(np.arange(n))
    aj.append(np.arange(n))
    av.append(diag)
    A = coo_matrix((np.concatenate(av), (np.concatenate(ai), np.concatenate(aj))),
                   shape=(n, n)).tocsc()
    sol = np.asarray(spsolve(A, rhs)).reshape(n, c)
    out.reshape(c, -1)[:, unknown] = sol.T
    return out


def noisy_linear_imputation(x: torch.Tensor, gone: torch.Tensor, sigma: float = ROAD_NOISE,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """ROAD's perturbed images: ``x`` (N, C, H, W) with the pixels where ``gone`` (N, H, W) is
    true imputed by the weighted-mean system plus Gaussian noise of std ``sigma``, independent per pixel
    and channel, drawn from ``generator`` on the CPU. Same dtype and device as ``x``."""
    xs = x.detach().to("cpu", torch.float64).numpy()
    masks = gone.detach().to("cpu").bool().numpy()
    out = torch.empty(xs.shape, dtype=torch.float64)
    for i, (img, m) in enumerate(zip(xs, masks)):
        filled = torch.from_numpy(linear_imputation(img, m))
        noise = torch.randn(filled.shape, generator=generator, dtype=torch.float64) * sigma
        out[i] = filled + noise * torch.from_numpy(m)
    return out.to(x.device, x.dtype)
