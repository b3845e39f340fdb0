"""Figure layouts of the study (Alam et al. 2022) built from radiographs and relevance maps.

Cells are radiographs or overlays (uint8 RGB); every figure is a PNG written atomically with
the raw maps it shows as ``.npy`` beside it (same stem). LRP maps are signed (``bwr``: red
positive, blue negative, scaled at their 99.5th |R| percentile); the Grad-CAM family is
non-negative (``inferno``, min-max). Layouts:

* :func:`lrp_rules_figure` — one image under several LRP rules (the study's Fig. 4);
* :func:`correct_incorrect_figure` — per class a correct and an incorrect prediction (Fig. 5);
* :func:`top_findings_figure` — the top-k findings of one image per method (Fig. 6);
* :func:`classes_figure` — one method (Grad-CAM) for several classes (Fig. 7/8);
* :func:`methods_figure` — classes × methods, LRP beside Grad-CAM.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..cam.methods import CAM_METHODS
from ..io import atomic_path, write_npy
from .render import overlay

CAM_LIKE = CAM_METHODS + ("random",)


def style(method: str) -> dict:
    """Colour map, normalisation and blending of a method's overlays."""
    if method in CAM_LIKE:
        return {"cmap": "gradcam", "norm": "minmax", "alpha": 0.5}
    return {"cmap": "bwr", "norm": "percentile", "alpha": 0.65}


def method_overlay(method: str, R: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The overlay of ``R`` on the grey ``image`` in ``method``'s style (the bare radiograph
    for a zero map, see :func:`flag`)."""
    if flag(method, R):
        return grey_rgb(image)
    return overlay(np.asarray(R, dtype=np.float64), image, **style(method))


def flag(method: str, R: np.ndarray) -> str:
    """`` (zero map)`` when a map holds no positive value: Grad-CAM after its ReLU when every
    channel weight points against the class (shown as the bare radiograph, not as colour)."""
    return " (zero map)" if float(np.max(R)) <= 0 and float(np.min(R)) >= 0 else ""


def grey_rgb(image: np.ndarray) -> np.ndarray:
    g = np.clip(np.asarray(image, dtype=np.float64), 0, 1)
    return np.rint(np.repeat(g[..., None], 3, axis=-1) * 255).astype(np.uint8)


def _colour_bars(fig, gs, row: int, cols: int, methods: Sequence[str]) -> None:
    """One horizontal colour bar per colour style among ``methods`` in grid row ``row``."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from .render import get_cmap

    kinds = list(dict.fromkeys("cam" if m in CAM_LIKE else "lrp" for m in methods))
    if not kinds:
        return
    names = {k: [m for m in methods if ("cam" if m in CAM_LIKE else "lrp") == k] for k in kinds}
    width = max(cols // len(kinds), 1)
    for k, kind in enumerate(kinds):
        span = slice(k * width, cols if k == len(kinds) - 1 else (k + 1) * width)
        cax = fig.add_subplot(gs[row, span])
        label = ", ".join(names[kind])
        if kind == "lrp":
            bar = fig.colorbar(ScalarMappable(Normalize(-1, 1), get_cmap("bwr")), cax=cax,
                               orientation="horizontal", ticks=[-1, 0, 1])
            bar.ax.set_xticklabels(["-1 against", "0", "+1 for"])
            text = (f"{label}: red = evidence for the class's logit, blue = against; "
                    "each panel scaled to ±99.5th pct of |R|")
        else:
            bar = fig.colorbar(ScalarMappable(Normalize(0, 1), get_cmap("gradcam")), cax=cax,
                               orientation="horizontal", ticks=[0, 1])
            bar.ax.set_xticklabels(["0", "max"])
            text = f"{label} (≥ 0, for the class): each panel min-max scaled"
        import textwrap

        bar.ax.tick_params(labelsize=6)
        bar.set_label(textwrap.fill(text, max(int(2.2 * 14 * (span.stop - span.start)), 30)),
                      fontsize=6)


def figure_grid(path: str | os.PathLike, cells: Sequence[Sequence[np.ndarray | None]],
                titles: Sequence[Sequence[str]] | None = None,
                row_labels: Sequence[str] | None = None, title: str | None = None,
                maps: np.ndarray | None = None, cell_size: float = 2.2, dpi: int = 110,
                methods: Sequence[str] = ()) -> Path:
    """A rows × cols grid of RGB cells (None: blank) with per-cell titles and, for the
    ``methods`` shown, colour bars saying what red and blue mean and how each panel is scaled;
    PNG + maps .npy."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, cols = len(cells), max(len(r) for r in cells)
    lines = max((str(t).count("\n") + 1 for r in (titles or []) for t in r if t), default=0)
    bar_h = 0.75 if methods else 0.0
    fig = Figure(figsize=(cols * cell_size + (0.4 if row_labels else 0),
                          rows * (cell_size + 0.18 * lines + 0.1) + bar_h + (0.5 if title else 0)),
                 dpi=dpi)
    FigureCanvasAgg(fig)
    ratios = [cell_size] * rows + ([0.12] if methods else [])
    gs = fig.add_gridspec(rows + (1 if methods else 0), cols, height_ratios=ratios)
    for i in range(rows):
        for j in range(cols):
            ax = fig.add_subplot(gs[i, j])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            cell = cells[i][j] if j < len(cells[i]) else None
            if cell is None:
                continue
            ax.imshow(cell, interpolation="bilinear")
            if titles is not None and j < len(titles[i]) and titles[i][j]:
                ax.set_title(str(titles[i][j]), fontsize=7)
            if row_labels is not None and j == 0:
                ax.set_ylabel(str(row_labels[i]), fontsize=8)
    if methods:
        _colour_bars(fig, gs, rows, cols, methods)
    if title:
        fig.suptitle(str(title), fontsize=9)
    top = 1.0 - (0.45 / fig.get_figheight() if title else 0.0)  # room for the title
    fig.tight_layout(rect=(0, 0, 1, top), h_pad=0.6)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    if maps is not None:
        write_npy(path.with_suffix(".npy"), np.asarray(maps, dtype=np.float32))
    return path


def lrp_rules_figure(path, image: np.ndarray, maps: dict[str, np.ndarray], label: str,
                     title: str | None = None) -> Path:
    """Fig. 4: the radiograph, then one overlay per LRP rule (``maps``: method → (H, W))."""
    names = list(maps)
    cells = [[grey_rgb(image)] + [method_overlay(m, maps[m], image) for m in names]]
    titles = [["input"] + [m + flag(m, maps[m]) for m in names]]
    return figure_grid(path, cells, titles, [label], title or f"LRP rules: {label}",
                       np.stack([maps[m] for m in names]), methods=names)


def top_findings_figure(path, image: np.ndarray, maps: dict[str, np.ndarray],
                        classes: Sequence[str], probs: Sequence[float], title: str | None = None) -> Path:
    """Fig. 6: per method (row) the radiograph and the maps of the top findings ((T, H, W))."""
    cells, titles = [], []
    for m, R in maps.items():
        cells.append([grey_rgb(image)] + [method_overlay(m, r, image) for r in R])
        titles.append(["input"] + [f"{c} ({p:.2f}){flag(m, r)}" for c, p, r in zip(classes, probs, R)])
    return figure_grid(path, cells, titles, list(maps), title or "top findings",
                       np.stack(list(maps.values())), methods=list(maps))


def classes_figure(path, image: np.ndarray, method: str, R: np.ndarray, classes: Sequence[str],
                   probs: Sequence[float], title: str | None = None) -> Path:
    """Fig. 7/8: one method (Grad-CAM) for several classes ((T, H, W)), one row."""
    cells = [[grey_rgb(image)] + [method_overlay(method, r, image) for r in R]]
    titles = [["input"] + [f"{c} ({p:.2f}){flag(method, r)}" for c, p, r in zip(classes, probs, R)]]
    return figure_grid(path, cells, titles, [method], title or f"{method} per class", R,
                       methods=[method])


def methods_figure(path, image: np.ndarray, maps: dict[str, np.ndarray], classes: Sequence[str],
                   probs: Sequence[float], title: str | None = None) -> Path:
    """LRP beside Grad-CAM: rows = classes, columns = input + methods (maps: method → (T, H, W))."""
    names = list(maps)
    cells = [[grey_rgb(image)] + [method_overlay(m, maps[m][k], image) for m in names]
             for k in range(len(classes))]
    titles = [["input"] + [m + flag(m, maps[m][k]) for m in names] for k in range(len(classes))]
    labels = [f"{c} ({p:.2f})" for c, p in zip(classes, probs)]
    return figure_grid(path, cells, titles, labels, title or "LRP beside Grad-CAM",
                       np.stack([maps[m] for m in names], 1), methods=names)


def correct_incorrect_figure(path, rows: Sequence[dict], method: str, title: str | None = None) -> Path:
    """Fig. 5: per class a correct and an incorrect prediction. ``rows``: dicts with
    ``class``, and ``correct`` / ``incorrect`` each None or ``{"image", "map", "caption"}``."""
    cells, titles, labels, maps = [], [], [], []
    for row in rows:
        line, caps = [], []
        for kind in ("correct", "incorrect"):
            case = row.get(kind)
            if case is None:
                line += [None, None]
                caps += [f"{kind}: none", ""]
                maps.append(np.zeros((1, 1)))
                continue
            line += [grey_rgb(case["image"]), method_overlay(method, case["map"], case["image"])]
            caps += [f"{kind}: {case['caption']}", f"{method}, {row['class']}" + flag(method, case["map"])]
            maps.append(case["map"])
        cells.append(line)
        titles.append(caps)
        labels.append(row["class"])
    shape = max((m.shape for m in maps), key=lambda s: s[0] * s[1])
    stack = np.stack([m if m.shape == shape else np.zeros(shape) for m in maps])
    return figure_grid(path, cells, titles, labels,
                       title or f"correct vs incorrect predictions ({method})", stack,
                       methods=[method])
