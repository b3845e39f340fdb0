"""The counterfactual test of a group of images on their own cells of a distinctive region.

Each tested image's cells are the part of its cluster's distinctive region holding
``member_share`` of its positive relevance there (:func:`~chexplain.audit.distinctive.member_cells`;
folded like SpRAy's maps, unfolded per image). The pixels under the image's own finding mask
(grown by ``evidence_margin`` pixels at 64 px) are never removed, neither in its cells nor
in the random ones: a marker lying on or beside the finding (a drain along a pneumothorax) is
tested on its part off the finding. An image all of whose cells lie at least
``evidence_overlap`` under its finding mask leaves nothing to test: such images are counted,
not tested (:class:`MemberTest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .arrays import ClassArrays
from .counterfactual import CounterfactualConfig, counterfactual
from .distinctive import DistinctConfig, member_cells, pool
from .passes import Streamed, findings_of
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
    on each one's cells of the module doc."""
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
    per, keep = [], []
    for q, i in enumerate(chosen):
        f = bool(ctx.flipped[i])
        m = np.asarray(maps[q], dtype=np.float64)
        cells = member_cells(m[:, ::-1] if f else m, ctx.cells[int(ctx.res.labels[i])],
                             ctx.distinct.member_share)
        cells = cells[:, ::-1] if f else cells
        if on is None or (cells & ~on[q]).any():
            per.append(cells)
            keep.append(q)
    on_finding = len(chosen) - len(keep)
    if len(keep) < 2:
        return MemberTest(None, len(keep), on_finding)
    tested = chosen[np.array(keep)]
    result = counterfactual(ctx.model, ctx.load_images(ctx.positions[tested]), ctx.cls,
                            np.stack(per), cfg, ctx.sd,
                            keep=None if found is None else found[np.array(keep)]).to_dict()
    return MemberTest(result | {"images_on_finding": on_finding}, len(keep), on_finding)
