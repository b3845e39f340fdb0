"""Region statistics: the share of an image's positive relevance inside given regions.

    share_r(R) = Σ_{p ∈ r} max(R_p, 0) / Σ_p max(R_p, 0)

Regions, on the 64 × 64 grid of the stored maps:

- ``finding``: the explained class's finding mask where known (the phantom's masks, NIH boxes);
- ``lungs``: a lung field when given (a mask folder, see :func:`read_mask_folder`);
- ``border``: the band of ``border`` × side along the four edges;
- ``top-left``, ``top-right``, ``bottom-left``, ``bottom-right``: squares of ``corner`` ×
  side, where markers and text live;
- ``corners``: the union of the four corners;
- ``outside body``: pixels darker than ``body_threshold`` connected to the image edge (air
  around the patient; dark lungs enclosed by the body are not outside), and what they cut
  off from the body (a marker in the air);
- ``bright``: per image, near-white pixels (grey ≥ ``bright_threshold``) in connected pieces
  of at most ``bright_max_area`` of the image, grown by ``bright_grow`` pixels: burned-in
  text, laterality tags, markers and radiopaque device stripes, wherever they sit (a word
  across the top of a 64-px image lies mostly outside the corner squares and the border
  band, and on the body, so the fixed regions miss it);
- ``shortcut area``: the union of the border, the corners, the outside of the body and the
  bright pieces — where no finding lives.

The shortcut **kinds** (:data:`KINDS`: corners, border, outside body, bright) describe where
a cluster's distinctive region lies (:mod:`chexplain.audit.distinctive`); they do not decide
what is tested: a region is found wherever it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
FIXED = ("border",) + CORNERS + ("corners", "outside body", "bright", "shortcut area")
KINDS = ("corners", "border", "outside body", "bright")  #: the kinds a strategy is attributed to


@dataclass(frozen=True)
class RegionConfig:
    border: float = 0.08  #: width of the border band, as a fraction of the side
    corner: float = 0.2  #: side of the corner squares, as a fraction of the side
    body_threshold: float = 0.1  #: grey level below which edge-connected pixels are outside
    bright_threshold: float = 0.9  #: grey level of burned-in text, tags and markers
    bright_max_area: float = 0.05  #: larger bright pieces (an over-exposed field) are not overlays
    bright_grow: int = 1  #: pixels the bright pieces are grown by (relevance sits beside strokes)


def fixed_masks(side: int, config: RegionConfig = RegionConfig()) -> dict[str, np.ndarray]:
    """The border band and the four corner squares (bool side × side)."""
    b = max(1, int(round(config.border * side)))
    c = max(1, int(round(config.corner * side)))
    border = np.ones((side, side), dtype=bool)
    border[b:side - b, b:side - b] = False
    out = {"border": border}
    for name, (rows, cols) in zip(CORNERS, ((slice(0, c), slice(0, c)), (slice(0, c), slice(side - c, side)),
                                            (slice(side - c, side), slice(0, c)),
                                            (slice(side - c, side), slice(side - c, side)))):
        m = np.zeros((side, side), dtype=bool)
        m[rows, cols] = True
        out[name] = m
    return out


def outside_body(images: np.ndarray, threshold: float) -> np.ndarray:
    """(N, H, W) grey images in [0, 1] → pixels darker than ``threshold`` connected to the edge,
    and the pieces of the rest cut off from the largest one (a marker or text in the air
    around the patient lies outside the body, though it is not dark)."""
    from scipy import ndimage

    out = np.zeros(images.shape, dtype=bool)
    for i, img in enumerate(images):
        dark = ndimage.uniform_filter(img.astype(np.float64), 3, mode="nearest") < threshold
        lab, _ = ndimage.label(dark)
        edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        outside = np.isin(lab, edge[edge > 0])
        rest, n = ndimage.label(~outside)
        if n > 1:
            body = np.argmax(np.bincount(rest.ravel())[1:]) + 1
            outside = rest != body
        out[i] = outside
    return out


def bright_pieces(images: np.ndarray, threshold: float = 0.9, max_area: float = 0.05,
                  grow: int = 1) -> np.ndarray:
    """(N, H, W) grey images in [0, 1] → the ``bright`` region of the module doc."""
    from scipy import ndimage

    out = np.zeros(images.shape, dtype=bool)
    limit = max_area * images.shape[-1] * images.shape[-2]
    for i, img in enumerate(images):
        lab, n = ndimage.label(img >= threshold)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())
        keep = np.flatnonzero(sizes <= limit)
        m = np.isin(lab, keep[keep > 0])
        out[i] = ndimage.binary_dilation(m, iterations=grow) if grow > 0 and m.any() else m
    return out


def shares(maps: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per region, the share of each map's positive relevance inside it: (N,) each; a mask is
    (H, W) for all maps or (N, H, W) per map. Maps without positive relevance get NaN."""
    pos = np.clip(np.asarray(maps, dtype=np.float64), 0, None)
    total = pos.reshape(len(pos), -1).sum(1)
    safe = np.where(total > 0, total, np.nan)
    return {name: (pos * m).reshape(len(pos), -1).sum(1) / safe for name, m in masks.items()}


def region_masks(images64: np.ndarray, finding: np.ndarray | None, has_finding: np.ndarray | None,
                 lungs: np.ndarray | None = None, config: RegionConfig = RegionConfig()
                 ) -> dict[str, np.ndarray]:
    """Every region for N images on the 64 × 64 grid (N, 64, 64): the fixed ones, ``outside
    body`` and ``shortcut area``; ``finding`` (rows without a known mask: all False) and
    ``lungs`` when given."""
    n, side = len(images64), images64.shape[-1]
    fixed = fixed_masks(side, config)
    out = {k: np.broadcast_to(v, (n, side, side)) for k, v in fixed.items()}
    out["outside body"] = outside_body(images64, config.body_threshold)
    corners = np.logical_or.reduce([fixed[c] for c in CORNERS])
    out["corners"] = np.broadcast_to(corners, (n, side, side))
    out["bright"] = bright_pieces(images64, config.bright_threshold, config.bright_max_area,
                                  config.bright_grow)
    out["shortcut area"] = out["outside body"] | out["bright"] | (fixed["border"] | corners)[None]
    if finding is not None and has_finding is not None and has_finding.any():
        out["finding"] = finding
    if lungs is not None:
        out["lungs"] = lungs
    return out


def region_shares(maps64: np.ndarray, masks: dict[str, np.ndarray],
                  has_finding: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:func:`shares` with NaN for ``finding`` where no mask is known."""
    out = shares(maps64, masks)
    if "finding" in out and has_finding is not None:
        out["finding"] = np.where(has_finding, out["finding"], np.nan)
    return out


def finding_masks(folder: str | os.PathLike, name: str, keys: Sequence[str], side: int = 64) -> np.ndarray:
    """The user's finding masks of class ``name``: ``<folder>/<class>/`` when that folder
    exists (the class's name, or its slug), else ``folder`` itself, read like
    :func:`read_mask_folder` (rows without a file: all False)."""
    from ..io import slug

    folder = Path(folder)
    for sub in (folder / name, folder / slug(name)):
        if sub.is_dir():
            return read_mask_folder(sub, keys, side)
    return read_mask_folder(folder, keys, side)


def read_mask_folder(folder: str | os.PathLike, keys: Sequence[str], side: int = 64) -> np.ndarray:
    """Masks (lung fields, findings) from ``folder``: for each image key, ``<folder>/<key>.png`` (the key's
    suffix replaced) or else ``<folder>/<file stem>.png`` (white = inside), max-pooled to
    ``side`` (all False where no file exists)."""
    from ..data.images import read_image
    from ..errors import DataError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: mask folder not found")
    out = np.zeros((len(keys), side, side), dtype=bool)
    for i, key in enumerate(keys):
        p = folder / Path(key).with_suffix(".png")
        if Path(key).is_absolute() or not p.is_file():
            p = folder / f"{Path(key).stem}.png"
        if p.is_file():
            m = torch.from_numpy((read_image(p) > 0.5).astype(np.float32))[None, None]
            out[i] = F.adaptive_max_pool2d(m, side)[0, 0].numpy() > 0
    return out
