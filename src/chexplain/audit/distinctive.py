"""A cluster's **distinctive evidence**: where its prototype differs most from the rest of its
class, wherever that is.

For cluster c with share prototype P_c (the mean of its members' positive relevance, each map
normalised to 1, on the 64-px grid) and the other clusters' prototypes P_j of sizes n_j,

    D_c = P_c − Σ_{j≠c} n_j P_j / Σ_{j≠c} n_j,

sum-pooled to the counterfactual grid. The **distinctive region** is the set of cells
8-connected to the cell of largest D_c whose D_c ≥ ``threshold`` × max D_c (at most
``max_cells`` of the grid, the largest kept): the evidence the cluster's members use and the
rest of the class does not. Nothing here knows where a shortcut may sit: the region is read
from the relevance alone, and the region kinds (:mod:`chexplain.audit.regions`) only
describe it afterwards (:func:`name_region`).

Each member's test region is the part of the distinctive region holding ``member_share`` of
the member's own positive relevance inside it (:func:`member_cells`): a marker drawn at a
random place in each image is removed where it is in that image, a word or a tube along most
of its length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DistinctConfig:
    threshold: float = 0.3  #: cells with D_c ≥ this × max D_c form the region's parts …
    min_part: float = 0.25  #: … each holding at least this share of the top part's sum of D_c
    evidence_overlap: float = 0.5  #: a member whose test cells are all at least this much under its finding mask is not tested
    evidence_margin: int = 1  #: pixels (64-px grid) the finding masks are grown by (relevance spreads past an outline)
    merge_margin: int = 1  #: grid cells regions are grown by before two of them coincide
    merge_mirrored: bool = True  #: a region also coincides with the other's mirror images (left-right, up-down)
    member_share: float = 0.9  #: each member's test cells hold this share of its positive relevance in the region


def contrast(protos: dict[int, np.ndarray], sizes: np.ndarray, c: int) -> np.ndarray:
    """D_c of the module doc (64 × 64); the prototype itself when the class has one cluster.
    Every other cluster counts, that of the maps without evidence too (a zero prototype): a
    shortcut shared by two clusters stays in each one's contrast with the whole rest."""
    others = [j for j in protos if j != c and sizes[j] > 0]
    if not others:
        return protos[c]
    w = np.array([sizes[j] for j in others], dtype=np.float64)
    rest = sum(wj * protos[j] for wj, j in zip(w, others)) / w.sum()
    return protos[c] - rest


def pool(m: np.ndarray, grid: int) -> np.ndarray:
    """(…, H, W) → (…, grid, grid) sum pooling (float64)."""
    from .pooling import sum_pool

    return sum_pool(torch.from_numpy(np.ascontiguousarray(m, dtype=np.float64)), grid).double().numpy()


def distinctive_cells(diff: np.ndarray, grid: int, threshold: float, max_cells: float,
                      min_part: float = 0.25) -> np.ndarray | None:
    """(grid, grid) bool: the distinctive region of the module doc for D_c ``diff`` (None
    when D_c is nowhere positive: the cluster uses nothing the rest of its class does not).
    The cells with D_c ≥ ``threshold`` × max D_c fall into 8-connected parts; the part of the
    largest D_c and every part holding at least ``min_part`` of its sum of D_c are kept (a
    tag in either corner is two parts of one cluster's region)."""
    from scipy import ndimage

    d = pool(diff, grid)
    top = float(d.max())
    if not top > 0:
        return None
    lab, n = ndimage.label(d >= threshold * top, structure=np.ones((3, 3)))
    sums = ndimage.sum(d, lab, index=np.arange(1, n + 1))
    first = int(lab.flat[int(np.argmax(d))])
    keep = [k for k in range(1, n + 1) if k == first or sums[k - 1] >= min_part * sums[first - 1]]
    region = np.isin(lab, keep)
    cap = max(1, int(max_cells * grid * grid))
    if region.sum() > cap:
        order = np.argsort(-np.where(region, d, -np.inf).ravel(), kind="stable")[:cap]
        region = np.zeros(grid * grid, dtype=bool)
        region[order] = True
        region = region.reshape(grid, grid)
    return region


def parts(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected parts of a bool mask, largest first."""
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(lab.ravel())[1:]
    return [lab == k + 1 for k in np.argsort(-sizes, kind="stable")]


def member_cells(map64: np.ndarray, region: np.ndarray, hot_share: float) -> np.ndarray:
    """(grid, grid) bool: the fewest cells of ``region`` holding ``hot_share`` of the map's
    positive relevance inside it (the whole region when it holds none)."""
    g = region.shape[0]
    pooled = np.where(region, pool(np.clip(map64, 0, None), g), 0.0).ravel()
    total = pooled.sum()
    if total <= 0:
        return region.copy()
    order = np.argsort(-pooled, kind="stable")
    k = int(np.searchsorted(np.cumsum(pooled[order]) / total, hot_share) + 1)
    out = np.zeros(g * g, dtype=bool)
    out[order[:min(k, int(region.sum()))]] = True
    return out.reshape(g, g)


def upsample(cells: np.ndarray, side: int) -> np.ndarray:
    """(…, grid, grid) bool → (…, side, side) bool (nearest)."""
    f = side // cells.shape[-1]
    return np.repeat(np.repeat(cells, f, axis=-2), f, axis=-1)


def coincide(a: np.ndarray, b: np.ndarray, margin: int, mirrored: bool = False) -> bool:
    """Two regions (grid cells) overlap once one is grown by ``margin`` cells (``mirrored``:
    or once the other is mirrored left-right, up-down or both: a tag placed in any corner)."""
    from scipy import ndimage

    if margin > 0:
        a = ndimage.binary_dilation(a, iterations=margin)
    flips = (b, b[:, ::-1], b[::-1], b[::-1, ::-1]) if mirrored else (b,)
    return any(bool((a & f).any()) for f in flips)


def unite(regions: dict[int, np.ndarray], margin: int, mirrored: bool = False) -> list[list[int]]:
    """Groups of the keys whose regions coincide, transitively (ascending)."""
    parent = {k: k for k in regions}

    def root(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    keys = sorted(regions)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if coincide(regions[a], regions[b], margin, mirrored):
                parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for k in keys:
        groups.setdefault(root(k), []).append(k)
    return sorted(groups.values(), key=lambda g: g[0])


def bbox(mask: np.ndarray) -> list[int]:
    """[row0, col0, row1, col1] (inclusive) of a bool mask's True pixels."""
    rows, cols = np.nonzero(mask)
    return [int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())]


def tight_mask(diff: np.ndarray, cells: np.ndarray, threshold: float) -> np.ndarray:
    """The pixels of the region's cells where D_c ≥ ``threshold`` × its largest value there:
    the region at the stored maps' resolution, for its extent in words."""
    inside = upsample(cells, diff.shape[-1])
    top = float(np.where(inside, diff, -np.inf).max())
    tight = inside & (diff >= threshold * top) if top > 0 else inside
    return tight if tight.any() else inside


_ROWS = ("upper", "middle", "lower")
_COLS = ("left", "centre", "right")


def place(box: list[int], side: int) -> str:
    """The image third of a bbox's centre in words: "upper left", "centre", "lower right" …"""
    r = min(2, int(3 * (box[0] + box[2] + 1) / 2 / side))
    c = min(2, int(3 * (box[1] + box[3] + 1) / 2 / side))
    if (r, c) == (1, 1):
        return "centre"
    if r == 1:
        return f"middle {_COLS[c]}"
    return f"{_ROWS[r]} {'centre' if c == 1 else _COLS[c]}"


def name_region(box: list[int], side: int, inside_body: float | None, bright: float = 0.0) -> str:
    """A region in words: its third of the image, inside or outside the body (the share of
    its pixels not outside the body, per member), on near-white pixels when most of it is,
    and its size in pixels at ``side`` px, e.g. "upper left, inside the body, 6×6 px at 64 px"."""
    words = [place(box, side)]
    if inside_body is not None:
        words.append("inside the body" if inside_body >= 0.5 else "outside the body")
    if bright >= 0.5:
        words.append("on near-white pixels")
    h, w = box[2] - box[0] + 1, box[3] - box[1] + 1
    return ", ".join(words) + f", {h}×{w} px at {side} px"
