"""Synthetic relevance maps with planted strategies (shared by the audit tests)."""

from __future__ import annotations

import numpy as np

#: (row, col) centres of the planted strategies, as fractions of the side
CENTRES = ((0.12, 0.12), (0.55, 0.35), (0.6, 0.75), (0.2, 0.8))


def planted_maps(sizes=(40, 30, 20), side=32, noise=0.02, seed=0):
    """Maps of ``len(sizes)`` strategies: a Gaussian blob at a strategy's centre (jittered,
    random gain), plus signed noise. Returns (maps (N, side, side), strategy per map)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    maps, truth = [], []
    for s, n in enumerate(sizes):
        cy, cx = CENTRES[s]
        for _ in range(n):
            jy, jx = rng.normal(0, 0.015, 2)
            blob = np.exp(-(((y - cy - jy) ** 2 + (x - cx - jx) ** 2) / (2 * 0.06 ** 2)))
            maps.append(rng.uniform(1.5, 2.0) * blob + noise * rng.standard_normal((side, side)))
            truth.append(s)
    perm = rng.permutation(len(truth))
    return np.asarray(maps)[perm], np.asarray(truth)[perm]
