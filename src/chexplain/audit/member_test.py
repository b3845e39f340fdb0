"""The counterfactual tests of a group of images on their own cells of a distinctive region.

Each tested image's cells are the part of its cluster's distinctive region holding ``member_share`` of
its positive relevance there (:func:`~chexplain.audit.distinctive.member_cells`; folded like
SpRAy's maps, unfolded per image).

1. **Off the finding.** The pixels under the image's own finding mask (grown by
   ``evidence_margin`` pixels at 64 px) are never removed, neither in its cells nor in the
   random ones. An image all of whose cells lie at least ``evidence_overlap`` under its
   finding mask leaves nothing to test there: such images are counted (:class:`MemberTest`).
2. **Matched.** Where that finds no use and the cells lie partly on the findings, each image
   loses its cells whole and is compared with images of the class outside the group whose
   finding covers at least as much of the same cells, the nearest in logit
   (:func:`~chexplain.audit.counterfactual.matched_counterfactual`): a marker lying on the
   finding's mask (a drain along the pneumothorax it stands in for) lowers its images' logit
   more than the finding does in theirs; the finding itself does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .arrays import ClassArrays
from .counterfactual import CounterfactualConfig, counterfactual, matched_counterfactual
from .distinctive import DistinctConfig, member_cells, pool, upsample
from .passes import Streamed, _fold, findings_of
from .spray import SprayResult


@dataclass
class ClassContext:
    """What the tests and descriptions of one class share."""

    arrays: ClassArrays
    positions: np.ndarray
    t: int
    res: SprayResult
    flipped: np.ndarray
    evidence: np.ndarray
    streamed: Streamed
    cells: dict[int, np.ndarray]
    distinct: DistinctConfig
    counterfactual: CounterfactualConfig
    load_images: Callable[[np.ndarray], Any]
    model: Any
    cls: int
    sd: float
    findings: np.ndarray | None = None  #: the user's finding masks (N, 64, 64) of the data set
    logits: np.ndarray | None = None  #: the class's logit per population image


@dataclass
class MemberTest:
    """The test of a group: its result (None: fewer than 2 images to test), how many of the
    chosen images were tested and how many had all their cells on their own finding."""

    result: dict[str, Any] | None
    tested: int
    on_finding: int


def rows(arrays: ClassArrays, key: str, positions: np.ndarray, t: int | None = None) -> np.ndarray:
    """``key`` at sorted ``positions``, read a block (one shard) at a time."""
    return np.concatenate([np.asarray(arrays.rows(key, blk, t)) for blk in arrays.blocks(positions)])


def finding_pixels(ctx: ClassContext, chosen: np.ndarray) -> np.ndarray | None:
    """(n, 64, 64) bool: per image of ``chosen`` (population indices), its finding mask grown
    by ``evidence_margin`` px (all False where none is known); None when no image has one."""
    pos = ctx.positions[chosen]
    blocks = [findings_of(ctx.arrays, blk, ctx.t, ctx.findings, ctx.distinct.evidence_margin)
              for blk in ctx.arrays.blocks(pos)]
    if not any(fb.known.any() for fb in blocks):
        return None
    return np.concatenate([fb.masks for fb in blocks])


def finding_cells(found: np.ndarray, grid: int, share: float) -> np.ndarray:
    """(n, grid, grid) bool: the cells at least ``share`` covered by the masks ``found``."""
    cell_area = (found.shape[-1] // grid) ** 2
    return pool(found.astype(np.float64), grid) >= share * cell_area


def member_test(members: np.ndarray, ctx: ClassContext, seed: int) -> MemberTest:
    """The counterfactual test (:mod:`chexplain.audit.counterfactual`) of ``members``
    (population indices; those without evidence are left out, at most ``max_images`` drawn)
    on each one's cells of the module doc; where that finds no use and the cells lie partly on
    the members' findings, the matched test (:func:`matched_test`) decides, and the first
    test's result is kept under ``"off_finding"``."""
    cfg = ctx.counterfactual
    chosen = members[ctx.evidence[members]]
    if len(chosen) > cfg.max_images:
        rng = np.random.default_rng(cfg.seed + seed)
        chosen = np.sort(rng.choice(chosen, cfg.max_images, replace=False))
    if len(chosen) < 2:
        return MemberTest(None, 0, 0)
    maps = rows(ctx.arrays, "maps64", ctx.positions[chosen], ctx.t)
    found = finding_pixels(ctx, chosen)
    on = None if found is None else finding_cells(found, cfg.grid, ctx.distinct.evidence_overlap)
    cells = np.zeros((len(chosen), cfg.grid, cfg.grid), bool)
    for q, i in enumerate(chosen):
        f = bool(ctx.flipped[i])
        m = np.asarray(maps[q], dtype=np.float64)
        c = member_cells(m[:, ::-1] if f else m, ctx.cells[int(ctx.res.labels[i])],
                         ctx.distinct.member_share)
        cells[q] = c[:, ::-1] if f else c
    keep = np.ones(len(chosen), bool) if on is None else (cells & ~on).reshape(len(chosen), -1).any(1)
    on_finding = int((~keep).sum())
    result = None
    if keep.sum() >= 2:
        result = counterfactual(ctx.model, ctx.load_images(ctx.positions[chosen[keep]]), ctx.cls,
                                cells[keep], cfg, ctx.sd,
                                keep=None if found is None else found[keep]).to_dict()
        result["images_on_finding"] = on_finding
        result["tested"] = chosen[keep].tolist()
    if found is not None and not (result and result["used"]):
        touched = (upsample(cells, found.shape[-1]) & found).reshape(len(chosen), -1).any(1)
        if touched.any():
            matched = matched_test(members, chosen, cells, found, ctx, seed)
            if matched is not None:
                result = matched | {"off_finding": result, "images_on_finding": on_finding}
    return MemberTest(result, int(keep.sum()), on_finding)


def matched_test(members: np.ndarray, chosen: np.ndarray, cells: np.ndarray, found: np.ndarray,
                 ctx: ClassContext, seed: int) -> dict[str, Any] | None:
    """The matched test (:func:`~chexplain.audit.counterfactual.matched_counterfactual`) of
    the images ``chosen`` with their ``cells`` and finding masks ``found``: each one's
    controls are up to ``n_matched`` images of the class outside ``members`` whose finding
    covers at least as much of the same cells (SpRAy's folded frame) as its own finding
    does. None when fewer than 2 images have a control."""
    cfg = ctx.counterfactual
    rng = np.random.default_rng(cfg.seed + 7919 + seed)
    pool_ = np.setdiff1d(np.arange(len(ctx.positions)), members)
    limit = 8 * cfg.n_matched * len(chosen)
    if len(pool_) > limit:
        pool_ = np.sort(rng.choice(pool_, limit, replace=False))
    if not len(pool_):
        return None
    cf = finding_pixels(ctx, pool_)
    if cf is None:
        return None
    has = cf.reshape(len(pool_), -1).any(1)
    pool_, cf = pool_[has], cf[has]
    side = found.shape[-1]
    px = upsample(cells, side)
    own = (px & found).reshape(len(chosen), -1).sum(1) / px.reshape(len(chosen), -1).sum(1)
    folded = _fold(px, ctx.flipped[chosen]).reshape(len(chosen), -1).astype(np.float64)
    theirs = _fold(cf, ctx.flipped[pool_]).reshape(len(pool_), -1).astype(np.float64)
    cover = (folded @ theirs.T) / folded.sum(1, keepdims=True)  # (chosen, pool)
    owner, picks = [], []
    for q in range(len(chosen)):
        ok = np.flatnonzero(cover[q] >= own[q] - 1e-9)
        if len(ok):
            if ctx.logits is None:
                take = rng.choice(ok, min(cfg.n_matched, len(ok)), replace=False)
            else:  # the nearest in logit: a finding as strongly seen
                gap = np.abs(ctx.logits[pool_[ok]] - ctx.logits[chosen[q]])
                take = ok[np.argsort(gap, kind="stable")[:cfg.n_matched]]
            owner += [q] * len(take)
            picks += take.tolist()
    owners = np.array(owner, dtype=int)
    tested = np.unique(owners)
    if len(tested) < 2:
        return None
    owners = np.searchsorted(tested, owners)
    picks = np.array(picks, dtype=int)
    g = cfg.grid
    fold_c = _fold(cells[tested], ctx.flipped[chosen[tested]])[owners]  # owner's cells, folded
    control_cells = _fold(fold_c, ctx.flipped[pool_[picks]])  # … in the control's frame
    res = matched_counterfactual(ctx.model, ctx.load_images(ctx.positions[chosen[tested]]),
                                 ctx.load_images(ctx.positions[pool_[picks]]), ctx.cls,
                                 cells[tested], control_cells.reshape(-1, g, g), owners, cfg, ctx.sd)
    return res.to_dict() | {"controls": int(len(np.unique(pool_[picks]))),  # distinct images
                            "matched_images": int(len(tested)), "tested": chosen[tested].tolist()}
