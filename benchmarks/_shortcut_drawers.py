"""Held-out shortcuts for the audit suite (``benchmarks/audit_phantom.py --suite``): drawn on
clean phantom images after they were written, by code that ``chexplain.audit`` never imports.

- ``dim``: a filled square (6×6 px at 64 px) on the lung field in the image's upper-left
  quadrant, at the grey of the pixels it covers plus :data:`DIM_LIFT` (0.3 in [0, 1]); placed
  only where that stays under :data:`DIM_CEILING`, so it is never near-white;
- ``dim-lungs``: the same square anywhere on either lung field;
- ``texture``: a fine checkerboard (10×10 px at 64 px, period 2 px) of ±:data:`TEXTURE_AMPLITUDE`
  added to the body;
- ``anywhere``: a hollow square (7×7 px at 64 px, 1 px outline) of medium grey
  (:data:`HOLLOW_GREY`) anywhere in the image.

Each fires with probability ``p_positive`` on images positive for the observation and
``p_negative`` on the others, from a generator of its own (seed, index, kind), independent of
the image. :func:`plant` rewrites every image of a phantom split (the same JPEG re-encoding for
all, so that only the drawing tells marked from unmarked) and records the drawn pixels in
``<split>_shortcut.npz`` beside the CSV (``paths``, ``marked``, ``masks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from chexplain.data.phantom import DEFAULT_PREVALENCE, FINDINGS, _ellipse
from chexplain.io import atomic_path, write_text

KINDS = ("dim", "dim-lungs", "texture", "anywhere")
_SALT = {"dim": 0xD1A, "dim-lungs": 0xD13, "texture": 0x7E7, "anywhere": 0xA11}
DIM_LIFT = 0.3
DIM_CEILING = 0.8
TEXTURE_AMPLITUDE = 0.1
HOLLOW_GREY = 0.55
JPEG_QUALITY = 95  # write_phantom's default


def side_at(size: int, side_at_64: int) -> int:
    """A side of ``side_at_64`` pixels at 64 px, scaled to ``size``."""
    return max(3, int(round(side_at_64 * size / 64)))


@dataclass(frozen=True)
class Fields:
    """Where a phantom sample's body and lung fields lie (bool H×W, their inner parts)."""

    body: np.ndarray
    lung: np.ndarray


def phantom_fields(size: int, seed: int, index: int) -> Fields:
    """Recompute sample ``index`` of phantom set ``seed``'s body and lung fields (less the
    heart) from the generator's draws, in :func:`chexplain.data.phantom.phantom_sample`'s
    order (default prevalences)."""
    h = w = int(size)
    rng = np.random.default_rng([int(seed), int(index), 0x5EED])
    present = {f: bool(rng.random() < DEFAULT_PREVALENCE[f]) for f in FINDINGS}
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = (x + 0.5) / w, (y + 0.5) / h
    body_a, body_b, body_cy = rng.uniform(0.40, 0.47), rng.uniform(0.55, 0.65), rng.uniform(0.52, 0.6)
    body = _ellipse(x, y, 0.5, body_cy, body_a, body_b, 0.04)
    lung = np.zeros((h, w), dtype=np.float32)
    for side in (-1, 1):
        cx = 0.5 + side * rng.uniform(0.19, 0.22)
        a, b, cy = rng.uniform(0.14, 0.17), rng.uniform(0.30, 0.34), rng.uniform(0.42, 0.46)
        dome = cy + b * rng.uniform(0.55, 0.8) - 0.05 * np.cos((x - cx) / a * 1.4)
        below = np.clip((dome - y) * min(h, w) / 3.0, 0.0, 1.0)
        lung = np.maximum(lung, _ellipse(x, y, cx, cy, a, b, 0.12) * below)
    rng.standard_normal((12, 12)), rng.standard_normal((28, 28))  # the lung markings
    rng.uniform(0, 0.02), rng.uniform(0.065, 0.08)  # the ribs
    heart_cx, heart_cy = rng.uniform(0.54, 0.57), rng.uniform(0.58, 0.62)
    heart_a, heart_b = rng.uniform(0.12, 0.14), rng.uniform(0.10, 0.12)
    grow = (rng.uniform(1.30, 1.50), rng.uniform(1.10, 1.25))
    ga, gb = grow if present["Cardiomegaly"] else (1.0, 1.0)
    heart = _ellipse(x, y, heart_cx, heart_cy, heart_a * ga, heart_b * gb, 0.15)
    return Fields(body=body > 0.9, lung=(lung > 0.5) & (heart == 0))


def _fits(region: np.ndarray, side: int) -> np.ndarray:
    """Top-left corners (bool) where a ``side``×``side`` square lies wholly in ``region``."""
    out = np.zeros(region.shape, dtype=bool)
    win = sliding_window_view(region, (side, side)).all(axis=(-2, -1))
    out[:win.shape[0], :win.shape[1]] = win
    return out


def _pick(rng: np.random.Generator, corners: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(corners)
    if len(ys) == 0:
        raise ValueError("no room for the shortcut")
    k = int(rng.integers(len(ys)))
    return int(ys[k]), int(xs[k])


@dataclass(frozen=True)
class Drawing:
    image: np.ndarray  #: float H×W in [0, 1]
    mask: np.ndarray  #: bool H×W, the pixels the drawing set


def dim_square(img: np.ndarray, fields: Fields, rng: np.random.Generator,
               lift: float = DIM_LIFT, quadrant: bool = True) -> Drawing:
    """A filled square on the lung field (``quadrant``: its part in the image's upper-left
    quadrant) at its local grey + ``lift``."""
    s = side_at(img.shape[0], 6)
    local = sliding_window_view(img, (s, s)).mean(axis=(-2, -1))
    low = np.zeros(img.shape, dtype=bool)
    low[:local.shape[0], :local.shape[1]] = local + lift <= DIM_CEILING
    field = fields.lung.copy()
    if quadrant:
        h, w = img.shape
        field[h // 2:] = False
        field[:, w // 2:] = False
    top, left = _pick(rng, _fits(field, s) & low)
    mask = np.zeros(img.shape, dtype=bool)
    mask[top:top + s, left:left + s] = True
    out = img.copy()
    out[mask] = img[mask].mean() + lift
    return Drawing(out, mask)


def texture_patch(img: np.ndarray, fields: Fields, rng: np.random.Generator,
                  amplitude: float = TEXTURE_AMPLITUDE) -> Drawing:
    """A checkerboard of ±``amplitude`` (period 2 px) added to the body."""
    s = side_at(img.shape[0], 10)
    top, left = _pick(rng, _fits(fields.body, s))
    mask = np.zeros(img.shape, dtype=bool)
    mask[top:top + s, left:left + s] = True
    yy, xx = np.mgrid[0:s, 0:s]
    out = img.copy()
    out[top:top + s, left:left + s] += amplitude * np.where((yy + xx) % 2 == 0, 1.0, -1.0)
    return Drawing(np.clip(out, 0.0, 1.0), mask)


def hollow_square(img: np.ndarray, fields: Fields, rng: np.random.Generator,
                  grey: float = HOLLOW_GREY) -> Drawing:
    """A 1-px hollow square of ``grey`` anywhere in the image."""
    s = side_at(img.shape[0], 7)
    top = int(rng.integers(img.shape[0] - s + 1))
    left = int(rng.integers(img.shape[1] - s + 1))
    mask = np.zeros(img.shape, dtype=bool)
    mask[top:top + s, left:left + s] = True
    mask[top + 1:top + s - 1, left + 1:left + s - 1] = False
    out = img.copy()
    out[mask] = grey
    return Drawing(out, mask)


def dim_square_lungs(img: np.ndarray, fields: Fields, rng: np.random.Generator,
                     lift: float = DIM_LIFT) -> Drawing:
    """:func:`dim_square` anywhere on either lung field."""
    return dim_square(img, fields, rng, lift, quadrant=False)


DRAWERS = {"dim": dim_square, "dim-lungs": dim_square_lungs, "texture": texture_patch,
           "anywhere": hollow_square}


def fires(kind: str, seed: int, index: int, p: float) -> tuple[bool, np.random.Generator]:
    """Whether ``kind`` is drawn on sample ``index`` (probability ``p``) and the generator
    that places it; independent of the image and of the other kinds."""
    rng = np.random.default_rng([int(seed), int(index), _SALT[kind]])
    return bool(rng.random() < p), rng


def shortcut_file(csv: Path) -> Path:
    return csv.with_name(csv.stem + "_shortcut.npz")


def plant(csv: str | Path, kind: str, observation: str, p_positive: float, p_negative: float,
          seed: int, strength: float | None = None) -> Path:
    """Draw ``kind`` on the images of a phantom split written by ``write_phantom(...,
    seed=seed)`` (rewriting all of them once) and record where in ``shortcut_file(csv)``.
    ``strength``: the dim square's lift, the texture's amplitude or the hollow square's grey
    (default: the module's constants)."""
    csv = Path(csv)
    frame = pd.read_csv(csv)
    root = csv.parent.parent
    paths = frame["Path"].tolist()
    n = len(paths)
    first = np.asarray(Image.open(root / paths[0]))
    masks = np.zeros((n, *first.shape), dtype=bool)
    marked = np.zeros(n, dtype=bool)
    for i, rel in enumerate(paths):
        p = p_positive if frame[observation].iloc[i] == 1 else p_negative
        fire, rng = fires(kind, seed, i, p)
        img = np.asarray(Image.open(root / rel).convert("L"), dtype=np.float32) / 255.0
        if fire:
            extra = () if strength is None else (float(strength),)
            d = DRAWERS[kind](img, phantom_fields(img.shape[0], seed, i), rng, *extra)
            img, masks[i], marked[i] = d.image, d.mask, True
        with atomic_path(root / rel) as tmp:
            Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(
                tmp, "JPEG", quality=JPEG_QUALITY)
    out = shortcut_file(csv)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, paths=np.array(paths), marked=marked, masks=masks)
    write_text(csv.with_name(csv.stem + "_shortcut.txt"),
               f"{kind}: {int(marked.sum())} of {n} images, p+ {p_positive}, p- {p_negative}\n")
    return out


def read_shortcut(csv: str | Path) -> dict[str, np.ndarray | None]:
    """Path → the drawn pixels (None where nothing was drawn)."""
    with np.load(shortcut_file(Path(csv))) as z:
        return {str(p): (m if k else None) for p, k, m in zip(z["paths"], z["marked"], z["masks"])}
