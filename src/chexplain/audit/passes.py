"""The streamed passes of a class's audit over the population's 64-px arrays, one block (a
shard's worth) at a time: region shares, share prototypes, and the shares and finding overlaps
of the clusters' distinctive regions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import ClassArrays
from .distinctive import DistinctConfig, upsample
from .regions import KINDS, RegionConfig, region_masks, region_shares
from .spray import SprayResult


@dataclass
class Streamed:
    """Per-image results of the pass over the population's 64-px arrays."""

    shares: dict[str, np.ndarray]
    mass: np.ndarray  #: positive relevance per image
    kind_area: dict[str, np.ndarray]  #: per image, the fraction of it each kind covers
    packed: dict[str, np.ndarray]  #: (P, 512) per image, bits packed: "outside body", "bright"


def regions_pass(arrays: ClassArrays, positions: np.ndarray, t: int, config: RegionConfig,
                 lungs: np.ndarray | None) -> Streamed:
    n = len(positions)
    shares: dict[str, np.ndarray] = {}
    mass = np.zeros(n)
    kind_area = {k: np.zeros(n) for k in KINDS}
    packed: dict[str, np.ndarray] = {}
    i = 0
    for blk in arrays.blocks(positions):
        j = i + len(blk)
        has = arrays.rows("has_finding", blk, t)
        masks = region_masks(arrays.rows("image64", blk), arrays.rows("finding64", blk, t), has,
                             None if lungs is None else lungs[blk], config)
        maps64 = arrays.rows("maps64", blk, t)
        for r, v in region_shares(maps64, masks, has).items():
            shares.setdefault(r, np.full(n, np.nan))[i:j] = v
        mass[i:j] = np.clip(maps64.astype(np.float64), 0, None).reshape(len(blk), -1).sum(1)
        for k in KINDS:
            kind_area[k][i:j] = np.asarray(masks[k], dtype=np.float64).reshape(len(blk), -1).mean(1)
        for k in ("outside body", "bright"):
            bits = np.packbits(np.asarray(masks[k]).reshape(len(blk), -1), axis=1)
            packed.setdefault(k, np.zeros((n, bits.shape[1]), np.uint8))[i:j] = bits
        i = j
    return Streamed(shares, mass, kind_area, packed)


def unpack(packed: np.ndarray, side: int = 64) -> np.ndarray:
    """(M, side² / 8) packed bits → (M, side, side) bool."""
    return np.unpackbits(packed, axis=1)[:, :side * side].reshape(len(packed), side, side).astype(bool)


def _fold(a: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """Mirror the rows of ``a`` (…, H, W) whose ``flipped`` is set (SpRAy's folded frame)."""
    return np.where(flipped.reshape(-1, *([1] * (a.ndim - 1))), a[..., ::-1], a)


def normalised(maps64: np.ndarray, evidence: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Each map's positive relevance normalised to 1 (zero without evidence)."""
    pos = np.clip(maps64.astype(np.float64), 0, None) / np.where(evidence, mass, 1.0)[:, None, None]
    pos[~evidence] = 0.0
    return pos


def prototypes_pass(arrays: ClassArrays, positions: np.ndarray, t: int, res: SprayResult,
                    evidence: np.ndarray, mass: np.ndarray
                    ) -> tuple[dict[int, np.ndarray], dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Per cluster the **share prototype**: the mean of its members' positive relevance, each
    normalised to 1 (no evidence: zero), folded like SpRAy's maps; and (image64, maps64) of
    the typical members."""
    flipped = res.flipped if res.flipped is not None else np.zeros(len(res.labels), bool)
    typical = {int(i) for c in res.typical for i in c}
    sums = {c: np.zeros((64, 64)) for c in range(res.n_clusters)}
    thumbs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    i = 0
    for blk in arrays.blocks(positions):
        j = i + len(blk)
        maps64 = arrays.rows("maps64", blk, t)
        pos = _fold(normalised(maps64, evidence[i:j], mass[i:j]), flipped[i:j])
        for c in np.unique(res.labels[i:j]):
            sums[int(c)] = sums[int(c)] + pos[res.labels[i:j] == c].sum(0)
        wanted = [q for q in range(i, j) if q in typical]
        if wanted:
            img = arrays.rows("image64", blk[np.array(wanted) - i])
            for w, q in enumerate(wanted):
                thumbs[q] = (img[w], np.array(maps64[q - i]))
        i = j
    counts = np.bincount(res.labels, minlength=res.n_clusters)
    return {c: v / max(counts[c], 1) for c, v in sums.items()}, thumbs


@dataclass
class Findings:
    """Finding masks of a block of images, grown by a margin (all False where none is known)."""

    masks: np.ndarray  #: (n, 64, 64) bool
    known: np.ndarray  #: (n,) bool: the image has a mask


def findings_of(arrays: ClassArrays, positions: np.ndarray, t: int, findings: np.ndarray | None,
                margin: int) -> Findings:
    """The stored finding masks (the phantom's, NIH's boxes) of ``positions`` (one block, sorted)
    or, where given, ``findings`` (N, 64, 64) of the whole data set (rows without a mask: all
    False), each grown by ``margin`` pixels."""
    from scipy import ndimage

    found = np.array(arrays.rows("finding64", positions, t), dtype=bool)
    known = np.array(arrays.rows("has_finding", positions, t), dtype=bool)
    if findings is not None:
        user = np.asarray(findings[positions], dtype=bool)
        mine = user.reshape(len(positions), -1).any(1)
        found = np.where(mine[:, None, None], user, found)
        known = known | mine
    found[~known] = False
    if margin > 0 and known.any():
        found = ndimage.binary_dilation(found, structure=np.ones((1, 3, 3), bool), iterations=margin)
    return Findings(found, known)


@dataclass
class RegionStats:
    """Per image and region part: the share of the image's positive relevance inside it; per
    part: the mean share of it on its cluster's members' finding masks (None: none known)."""

    share: np.ndarray  #: (P, parts)
    overlap: list[float | None]


def distinct_pass(arrays: ClassArrays, positions: np.ndarray, t: int, res: SprayResult,
                  evidence: np.ndarray, mass: np.ndarray, regions_px: list[np.ndarray],
                  owners: list[int], findings: np.ndarray | None, margin: int) -> RegionStats:
    """:class:`RegionStats` of the region parts ``regions_px`` (64 px, folded frame) of the
    clusters ``owners``. The finding masks are the stored ones (the phantom's, NIH's boxes)
    or, where given, ``findings`` (N, 64, 64) of the whole data set (rows without a mask: all
    False), each grown by ``margin`` pixels (:func:`findings_of`)."""
    flipped = res.flipped if res.flipped is not None else np.zeros(len(res.labels), bool)
    k = len(regions_px)
    stack = np.stack(regions_px) if k else np.zeros((0, 64, 64), bool)
    area = stack.reshape(k, 64 * 64).sum(1)
    share = np.full((len(positions), k), np.nan)
    on_finding = np.full((len(positions), k), np.nan)  # per image and part (known masks only)
    i = 0
    for blk in arrays.blocks(positions):
        j = i + len(blk)
        pos = _fold(normalised(arrays.rows("maps64", blk, t), evidence[i:j], mass[i:j]), flipped[i:j])
        if k:
            share[i:j] = np.einsum("bhw,khw->bk", pos, stack.astype(np.float64))
        share[i:j][~evidence[i:j]] = np.nan
        fb = findings_of(arrays, blk, t, findings, margin)
        has = fb.known
        if has.any() and k:
            f = _fold(fb.masks[has], flipped[i:j][has]).reshape(int(has.sum()), -1).astype(np.float64)
            on_finding[i + np.flatnonzero(has)] = f @ stack.reshape(k, -1).T.astype(np.float64) / area
        i = j
    overlap: list[float | None] = []
    for q, c in enumerate(owners):  # summed over the whole population: the same for any blocks
        v = on_finding[(res.labels == c) & np.isfinite(on_finding[:, q]), q]
        overlap.append(float(v.mean()) if len(v) else None)
    return RegionStats(share, overlap)


@dataclass
class DistinctShares:
    """Per image, the share of its positive relevance in each cluster's distinctive region; per
    cluster, the mean share of its region on its members' finding masks (None: none known)."""

    share: np.ndarray  #: (P, clusters)
    overlap: dict[int, float | None]


def distinct_shares(cells: dict[int, np.ndarray], arrays: ClassArrays, positions: np.ndarray, t: int,
                    res: SprayResult, evidence: np.ndarray, mass: np.ndarray,
                    findings: np.ndarray | None, config: DistinctConfig) -> DistinctShares:
    """:class:`DistinctShares` of the clusters' regions ``cells`` (grid cells, folded frame)."""
    owners = list(cells)
    stats = distinct_pass(arrays, positions, t, res, evidence, mass,
                          [upsample(cells[c], 64) for c in owners], owners, findings, config.evidence_margin)
    share = np.full((len(positions), res.n_clusters), np.nan)
    for q, c in enumerate(owners):
        share[:, c] = stats.share[:, q]
    return DistinctShares(share, dict(zip(owners, stats.overlap)))
