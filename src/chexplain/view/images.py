"""PNG bytes for the viewer: radiographs, colour layers of stored maps (the project's own
colour maps, :mod:`chexplain.viz.render`), colour bars and mask outlines. Rendering a stored
map is not computing an explanation: the values are the ones on disk."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..viz.render import NORMS, get_cmap, heatmap_rgb

#: the longest side of a radiograph sent to the page
DISPLAY = 512


@dataclass(frozen=True)
class MapScale:
    """How a map was scaled for display: the values at the colour bar's ends."""

    norm: str
    low: float
    high: float


def png_bytes(pixels: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) → PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def grey_uint8(image: np.ndarray) -> np.ndarray:
    """A grey image as uint8, min-max scaled unless it is uint8 already."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    scaled = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.rint(scaled * 255).astype(np.uint8)


def radiograph_png(path: Path, side: int = DISPLAY) -> bytes:
    """The radiograph at ``path`` (PNG, JPEG or DICOM) as a grey PNG, at most ``side`` px."""
    from PIL import Image

    from ..data.images import read_image

    img = Image.fromarray(grey_uint8(read_image(path)))
    img.thumbnail((side, side))
    return png_bytes(np.asarray(img))


def display_size(path: Path, side: int = DISPLAY) -> tuple[int, int]:
    """(H, W) of the radiograph at ``path`` as :func:`radiograph_png` sends it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, UnidentifiedImageError):  # DICOM: read it
        from ..data.images import read_image

        h, w = read_image(path).shape[:2]
    scale = min(1.0, side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def map_scale(R: np.ndarray, norm: str, percentile: float = 99.5) -> MapScale:
    """The colour bar's end values for ``R`` under ``norm`` (as :func:`~chexplain.viz.render.
    normalize` scales it)."""
    R = np.asarray(R, dtype=np.float64)
    if norm == "minmax":
        return MapScale(norm, float(R.min()), float(R.max()))
    a = np.abs(R)
    s = float(np.percentile(a, percentile)) if norm == "percentile" else 0.0
    s = s if s > 0 else float(a.max())
    return MapScale(norm, -s, s)


def map_png(R: np.ndarray, cmap: str, norm: str, percentile: float = 99.5) -> bytes:
    """The map's colour layer (no background: the page blends it over the radiograph)."""
    if norm not in NORMS:
        norm = "symmetric"
    return png_bytes(heatmap_rgb(np.asarray(R, dtype=np.float64), cmap=cmap, norm=norm,
                                 percentile=percentile))


def colorbar_png(cmap: str, width: int = 256, height: int = 12) -> bytes:
    """A horizontal colour bar of ``cmap``, low end on the left."""
    cm = get_cmap(cmap)
    row = np.rint(cm(np.linspace(0, 1, width))[:, :3] * 255).astype(np.uint8)
    return png_bytes(np.repeat(row[None], height, axis=0))


def outline_png(mask: np.ndarray, colour: tuple[int, int, int] = (0, 220, 0)) -> bytes:
    """A transparent PNG with the outline of a boolean mask (its boundary pixels)."""
    m = np.asarray(mask).astype(bool)
    pad = np.pad(m, 1)
    interior = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    edge = m & ~interior
    out = np.zeros(m.shape + (4,), np.uint8)
    out[edge] = (*colour, 255)
    return png_bytes(out)
