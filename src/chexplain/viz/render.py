"""Heatmap rendering: colour maps, normalisation, overlays, figure grids, PNG + raw NPY output.

Value conventions
-----------------
``normalize`` maps a relevance map to a display range:

* ``"symmetric"``: R / max|R| -> [-1, 1]; the sign and the relative magnitude are kept.
* ``"percentile"``: R / q, q = the ``percentile``-th percentile of |R|, clipped to [-1, 1]
  (a few extreme pixels no longer wash out the rest; q falls back to max|R| when it is 0).
* ``"minmax"``: (R - min) / (max - min) -> [0, 1] (what Grad-CAM tools show).
* ``"none"``: no scaling (R is assumed to be in the display range already).

A zero or constant map never divides by zero: it normalises to 0 everywhere.

Colour maps (:func:`get_cmap`) are *signed* (``bwr``, ``seismic``, ``study``, ``coldnhot``:
symmetric around zero, 0 -> the centre colour) or *sequential* (``gradcam`` = matplotlib's
``inferno``, perceptually uniform, black -> yellow; any other matplotlib name also works).
A signed map shows v in [-1, 1] at (v + 1) / 2; a sequential map shows v directly, with
negative values (after "symmetric"/"percentile") clipped to its low end. After "minmax" the
value in [0, 1] is used directly for every colour map.

Only matplotlib's Agg canvas is used (no display, no pyplot global state).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..io import atomic_path, write_npy

NORMS = ("symmetric", "percentile", "minmax", "none")
SIGNED_CMAPS = ("bwr", "seismic", "study", "coldnhot")
_DIVERGING = {
    "bwr", "seismic", "coolwarm", "RdBu", "RdBu_r", "PiYG", "PRGn", "BrBG", "PuOr", "RdGy",
    "RdYlBu", "RdYlGn", "Spectral", "bwr_r", "seismic_r", "coolwarm_r",
}  # fmt: skip

# name -> (position, RGB) nodes; every signed map has its neutral colour at exactly 0.5.
_CUSTOM = {
    # positive red, neutral green, negative blue (Bach et al. 2015, PLOS ONE; the study's map),
    # with cyan / yellow halfway so that magnitude reads as in a jet map.
    "study": [(0.0, (0, 0, 1)), (0.25, (0, 1, 1)), (0.5, (0, 1, 0)), (0.75, (1, 1, 0)), (1.0, (1, 0, 0))],
    # cold (cyan -> blue) for negative, black for zero, hot (red -> yellow) for positive.
    "coldnhot": [(0.0, (0, 1, 1)), (0.25, (0, 0, 1)), (0.5, (0, 0, 0)), (0.75, (1, 0, 0)), (1.0, (1, 1, 0))],
}
_ALIASES = {"gradcam": "inferno"}
_LUT = 257


def get_cmap(name: str):
    """A matplotlib Colormap: "bwr", "seismic", "study", "coldnhot", "gradcam" or any matplotlib name.

    Signed maps ("bwr", "seismic", "study", "coldnhot") put zero at the centre colour (white,
    white, green, black). "gradcam" is matplotlib's "inferno" (sequential).
    """
    import matplotlib
    from matplotlib.colors import Colormap, LinearSegmentedColormap

    if isinstance(name, Colormap):
        return name if name.N % 2 else name.resampled(_LUT)
    if not isinstance(name, str):
        raise InputError(f"cmap must be a colour-map name, got {type(name).__name__}")
    # an odd lookup-table size puts an entry exactly at 0.5: zero gets the exact neutral colour
    if name in _CUSTOM:
        return LinearSegmentedColormap.from_list(name, _CUSTOM[name], N=_LUT)
    try:
        return matplotlib.colormaps[_ALIASES.get(name, name)].resampled(_LUT)
    except KeyError:
        raise InputError(
            f"unknown colour map {name!r}; use one of {', '.join(SIGNED_CMAPS + ('gradcam',))} "
            "or a matplotlib colour-map name"
        ) from None


def _is_signed(cmap) -> bool:
    name = cmap if isinstance(cmap, str) else getattr(cmap, "name", "")
    return name in SIGNED_CMAPS or name in _DIVERGING


def _numpy(a) -> np.ndarray:
    """A numpy view of an array or torch tensor (bfloat16 -> float32, which numpy lacks)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu()
        a = a.float() if str(a.dtype) == "torch.bfloat16" else a
        return a.numpy()
    return np.asarray(a)


def _as_map(R, what: str = "relevance map") -> np.ndarray:
    """R as a finite float64 (H, W) array; accepts torch tensors and a leading axis of size 1."""
    R = _numpy(R)
    if R.ndim == 3 and R.shape[0] == 1:
        R = R[0]
    if R.ndim != 2:
        raise InputError(
            f"{what} must have shape (H, W), got {R.shape}; sum the channel axis first (R.sum(0))"
        )
    if not (np.issubdtype(R.dtype, np.floating) or np.issubdtype(R.dtype, np.integer) or R.dtype == bool):
        raise InputError(f"{what} must be numeric, got dtype {R.dtype}")
    R = R.astype(np.float64)
    if not np.isfinite(R).all():
        raise InputError(f"{what} holds NaN or infinite values; cannot render it")
    return R


def _scale(R: np.ndarray, mode: str, percentile: float) -> float:
    """The divisor used by "symmetric" / "percentile" (0 for an all-zero map)."""
    a = np.abs(R)
    if a.size == 0:
        return 0.0
    if mode == "percentile":
        if not 0.0 < float(percentile) <= 100.0:
            raise InputError(f"percentile must be in (0, 100], got {percentile}")
        q = float(np.percentile(a, percentile))
        if q > 0:
            return q
    return float(a.max())


def _apply(R: np.ndarray, mode: str, scale: float | tuple[float, float]) -> np.ndarray:
    if mode == "none":
        return R.astype(np.float64, copy=True)
    if mode == "minmax":
        lo, hi = scale  # type: ignore[misc]
        return (R - lo) / (hi - lo) if hi > lo else np.zeros_like(R, dtype=np.float64)
    s = float(scale)  # type: ignore[arg-type]
    return np.clip(R / s, -1.0, 1.0) if s > 0 else np.zeros_like(R, dtype=np.float64)


def _check_norm(mode: str) -> None:
    if mode not in NORMS:
        raise InputError(f"unknown normalisation {mode!r}; use one of {', '.join(NORMS)}")


def _fit(R: np.ndarray, mode: str, percentile: float):
    if mode == "minmax":
        return (float(R.min()), float(R.max())) if R.size else (0.0, 0.0)
    return None if mode == "none" else _scale(R, mode, percentile)


def normalize(R: np.ndarray, mode: str = "symmetric", percentile: float = 99.5) -> np.ndarray:
    """Scale R for display: "symmetric" -> [-1, 1], "percentile" -> [-1, 1] (clipped), "minmax" -> [0, 1].

    Works on arrays of any shape (the scale is taken over the whole array); never divides by
    zero: an all-zero or constant map normalises to zeros.
    """
    _check_norm(mode)
    R = _numpy(R).astype(np.float64)
    if not np.isfinite(R).all():
        raise InputError("relevance map holds NaN or infinite values; cannot normalise it")
    return _apply(R, mode, _fit(R, mode, percentile))


def _to_unit(v: np.ndarray, norm: str, cmap) -> np.ndarray:
    """Normalised values -> colour-map positions in [0, 1] (see the module docstring)."""
    if norm == "minmax":
        return np.clip(v, 0.0, 1.0)
    if _is_signed(cmap):
        return np.clip((v + 1.0) / 2.0, 0.0, 1.0)
    return np.clip(v, 0.0, 1.0)


def _colour(v: np.ndarray, norm: str, cmap) -> np.ndarray:
    cm = get_cmap(cmap)
    u = _to_unit(v, norm, cmap)
    # index the 256-entry lookup table exactly: 0.5 -> the centre colour of the signed maps
    rgba = cm(np.rint(u * (cm.N - 1)).astype(np.int64))
    return np.rint(rgba[..., :3] * 255.0).astype(np.uint8)


def heatmap_rgb(R: np.ndarray, cmap: str = "bwr", norm: str = "symmetric", percentile: float = 99.5) -> np.ndarray:
    """Colour a (H, W) relevance map: uint8 (H, W, 3). Zero maps to the signed map's centre colour."""
    _check_norm(norm)
    R = _as_map(R)
    return _colour(_apply(R, norm, _fit(R, norm, percentile)), norm, cmap)


def _background_rgb(bg) -> np.ndarray:
    """A background image as float RGB in [0, 1].

    uint8 -> /255; other integers (e.g. 12/16-bit radiographs) and floats outside [0, 1] are
    min-max scaled, except floats within [0, 255] which are read as 8-bit values (/255).
    RGBA is composited over black (transparent pixels carry no image).
    """
    bg = _numpy(bg)
    if bg.ndim == 3 and bg.shape[-1] == 1:
        bg = bg[..., 0]
    if not (bg.ndim == 2 or (bg.ndim == 3 and bg.shape[-1] in (3, 4))):
        raise InputError(f"background must have shape (H, W), (H, W, 3) or (H, W, 4), got {bg.shape}")
    if bg.dtype == np.uint8:
        img = bg.astype(np.float64) / 255.0
    else:
        img = bg.astype(np.float64)
        if not np.isfinite(img).all():
            raise InputError("background holds NaN or infinite values")
        lo, hi = (float(img.min()), float(img.max())) if img.size else (0.0, 0.0)
        if np.issubdtype(bg.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
            pass
        elif np.issubdtype(bg.dtype, np.floating) and lo >= 0.0 and hi <= 255.0:
            img = img / 255.0
        else:
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=-1)
    if img.shape[-1] == 4:
        return img[..., :3] * img[..., 3:4]
    return img


def _linear_axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a linear resize along one axis, with half-pixel centres:
    source coordinate (i + ½)·n_in/n_out − ½, clamped at 0 (torch's ``align_corners=False``)."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def _resize(R: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map (half-pixel centres, as torch's ``F.interpolate`` with
    ``align_corners=False``), in NumPy so that rendering needs no PyTorch."""
    if R.shape == tuple(hw):
        return R
    r0, r1, wr = _linear_axis(R.shape[0], hw[0])
    c0, c1, wc = _linear_axis(R.shape[1], hw[1])
    rows = R[r0] * (1 - wr)[:, None] + R[r1] * wr[:, None]
    return rows[:, c0] * (1 - wc) + rows[:, c1] * wc


def overlay(
    R: np.ndarray,
    background: np.ndarray,
    alpha: float = 0.5,
    cmap: str = "bwr",
    norm: str = "symmetric",
    percentile: float = 99.5,
) -> np.ndarray:
    """Blend the coloured map over a grayscale / RGB / RGBA background: uint8 (H, W, 3).

    out = (1 - alpha) * background + alpha * heatmap; the map is resized (bilinear) to the
    background's size when they differ. ``alpha`` in [0, 1].
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be between 0 and 1, got {alpha}")
    _check_norm(norm)
    R = _as_map(R)
    img = _background_rgb(background)
    v = _resize(_apply(R, norm, _fit(R, norm, percentile)), img.shape[:2])  # the map's own scale
    heat = _colour(v, norm, cmap).astype(np.float64) / 255.0
    out = (1.0 - float(alpha)) * img + float(alpha) * heat
    return np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def _png_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix == "":
        return path.with_suffix(".png")
    if path.suffix.lower() != ".png":
        raise InputError(f"{path}: heatmaps are written as PNG; use a path ending in .png")
    return path


def _write_png(path: Path, rgb: np.ndarray, size: tuple[int, int] | None) -> None:
    from PIL import Image

    img = Image.fromarray(rgb, mode="RGB") if rgb.ndim == 3 else Image.fromarray(rgb)
    if size is not None:
        try:
            w, h = (int(size[0]), int(size[1]))
        except (TypeError, ValueError, IndexError):
            raise InputError(f"size must be (width, height) in pixels, got {size!r}") from None
        if w < 1 or h < 1:
            raise InputError(f"size must be positive (width, height), got {size!r}")
        if (w, h) != img.size:
            # nearest: every output pixel shows a value of the map, no invented intermediates
            img = img.resize((w, h), resample=Image.NEAREST)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def save_heatmap(
    path: str | os.PathLike,
    R: np.ndarray,
    cmap: str = "bwr",
    norm: str = "symmetric",
    background: np.ndarray | None = None,
    alpha: float = 0.5,
    size: tuple[int, int] | None = None,
    percentile: float = 99.5,
) -> Path:
    """Write R as a PNG (exactly ``size=(W, H)`` pixels if given) and its raw values as .npy.

    The .npy (same stem, float, unnormalised) sits beside the PNG; both are written atomically.
    With ``background`` the PNG is the :func:`overlay`. Returns the PNG's path.
    """
    png = _png_path(path)
    raw = _as_map(R)
    if background is not None:
        rgb = overlay(raw, background, alpha=alpha, cmap=cmap, norm=norm, percentile=percentile)
    else:
        rgb = heatmap_rgb(raw, cmap=cmap, norm=norm, percentile=percentile)
    src = _numpy(R)
    _write_png(png, rgb, size)
    write_npy(png.with_suffix(".npy"), src if np.issubdtype(src.dtype, np.floating) else raw)
    return png


def _grid_backgrounds(backgrounds, rows: int, cols: int):
    """Per-cell background accessor for (rows, H, W[, C]) or (rows, cols, H, W[, C])."""
    if backgrounds is None:
        return lambda i, j: None
    b = _numpy(backgrounds)
    per_cell = b.ndim == 5 or (b.ndim == 4 and b.shape[:2] == (rows, cols) and b.shape[-1] not in (3, 4))
    if per_cell and b.shape[:2] == (rows, cols):
        return lambda i, j: b[i, j]
    if b.ndim in (3, 4) and b.shape[0] == rows:
        return lambda i, j: b[i]
    raise InputError(
        f"backgrounds must have shape (rows, H, W[, C]) or (rows, cols, H, W[, C]) for a "
        f"{rows}x{cols} grid, got {b.shape}"
    )


def save_grid(
    path: str | os.PathLike,
    maps: np.ndarray,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    cmap: str = "bwr",
    norm: str = "symmetric",
    backgrounds: np.ndarray | None = None,
    alpha: float = 0.5,
    title: str | None = None,
    cell_size: float = 1.5,
    shared_scale: bool | str = False,
    percentile: float = 99.5,
    dpi: int = 100,
) -> Path:
    """A labelled figure grid of maps (rows, cols, H, W) as PNG, with the raw maps as .npy beside it.

    Normalisation is per cell by default; ``shared_scale=True`` (or "grid") uses one scale for
    the whole grid, "row" / "col" one per row / column (compare magnitudes across methods or
    classes). ``cell_size`` is the cell's edge in inches at ``dpi``. Returns the PNG's path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    png = _png_path(path)
    _check_norm(norm)
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be between 0 and 1, got {alpha}")
    raw = _numpy(maps)
    if raw.ndim != 4 or 0 in raw.shape:
        raise InputError(f"maps must have shape (rows, cols, H, W), got {raw.shape}")
    M = raw.astype(np.float64)
    if not np.isfinite(M).all():
        raise InputError("maps hold NaN or infinite values; cannot render them")
    rows, cols = M.shape[:2]
    for name, labels, n in (("row_labels", row_labels, rows), ("col_labels", col_labels, cols)):
        if labels is not None and len(labels) != n:
            raise InputError(f"{name} has {len(labels)} entries for {n} {name[:3]}s")
    modes = {False: "cell", None: "cell", True: "grid", "cell": "cell", "grid": "grid", "row": "row", "col": "col"}
    share = modes.get(shared_scale) if isinstance(shared_scale, (bool, str, type(None))) else None
    if share is None:
        raise InputError(f"shared_scale must be False, True, 'row' or 'col', got {shared_scale!r}")
    bg = _grid_backgrounds(backgrounds, rows, cols)

    def scale_of(i: int, j: int):
        block = {"cell": M[i, j], "row": M[i], "col": M[:, j], "grid": M}[share]
        return _fit(block, norm, percentile)

    fig = Figure(figsize=(cols * cell_size, rows * cell_size + 0.22 * (str(title).count("\n") + 1 if title else 0)
                          + 0.2), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i in range(rows):
        for j in range(cols):
            v = _apply(M[i, j], norm, scale_of(i, j))
            b = bg(i, j)
            if b is None:
                rgb = _colour(v, norm, cmap)
            else:
                img = _background_rgb(b)
                heat = _colour(_resize(v, img.shape[:2]), norm, cmap) / 255.0
                rgb = np.rint(np.clip((1 - alpha) * img + alpha * heat, 0, 1) * 255).astype(np.uint8)
            ax = axes[i, j]
            ax.imshow(rgb, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col_labels is not None and i == 0:
                ax.set_title(str(col_labels[j]), fontsize=9)
            if row_labels is not None and j == 0:
                ax.set_ylabel(str(row_labels[i]), fontsize=9)
    lines = str(title).count("\n") + 1 if title else 0
    if title:
        fig.suptitle(str(title), fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - lines * 0.22 / fig.get_figheight()))  # room for the title
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    write_npy(png.with_suffix(".npy"), raw)
    return png
