"""Layout check of a matplotlib figure: titles, labels and tick labels that overlap another
panel or another text, or that are clipped at the figure's edge.

It compares the tight bounding boxes (in display pixels, after a draw) of every visible text
(suptitle, axes titles, axis labels, tick labels, figure texts) with the boxes of the panels
that show data (images, lines, bars) and with each other. Used by the tests on every figure
chexplain writes (``tests/conftest.py`` wraps ``Figure.savefig``) and available to callers:

>>> problems = layout_problems(fig)   # [] when the figure is clean
"""

from __future__ import annotations

from typing import Any

#: pixels two boxes may share before they count as overlapping (antialiasing, rounding)
TOLERANCE = 1.0


def _texts(fig: Any) -> list[tuple[Any, Any, str]]:
    """(text artist, owning axes or None, description) for every visible, non-empty text."""
    out = []

    def add(t: Any, ax: Any, what: str) -> None:
        if t is not None and t.get_visible() and t.get_text().strip():
            out.append((t, ax, f"{what} {t.get_text().strip()!r}"))

    if getattr(fig, "_suptitle", None) is not None:
        add(fig._suptitle, None, "suptitle")
    for t in fig.texts:
        if t is not getattr(fig, "_suptitle", None):
            add(t, None, "figure text")
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for t in (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)):
            add(t, ax, "title")
        for axis, name in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            if not axis.get_visible():
                continue
            add(axis.label, ax, f"{name} label")
            lo, hi = sorted(axis.get_view_interval())
            span = (hi - lo) * 1e-9
            for tick in axis.get_major_ticks():  # only the ticks drawn: inside the view limits
                if lo - span <= tick.get_loc() <= hi + span and tick.label1.get_visible():
                    add(tick.label1, ax, f"{name} tick label")
    return out


def _panels(fig: Any) -> list[tuple[Any, Any]]:
    """(axes, bbox) of every visible panel that shows something (blank grid cells are skipped)."""
    out = []
    for ax in fig.axes:
        if ax.get_visible() and ax.axison is not False and (ax.has_data() or ax.images):
            out.append((ax, ax.get_window_extent()))
    return out


def _overlap(a: Any, b: Any, tol: float = TOLERANCE) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tol) and (min(a.y1, b.y1) - max(a.y0, b.y0) > tol)


def layout_problems(fig: Any) -> list[str]:
    """Human-readable descriptions of overlapping or clipped texts ([] for a clean figure)."""
    if fig.canvas is None or not hasattr(fig.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    W, H = fig.bbox.width, fig.bbox.height
    texts = [(t, ax, what, t.get_window_extent(renderer)) for t, ax, what in _texts(fig)]
    panels = _panels(fig)
    problems = []
    for t, ax, what, box in texts:
        if box.x0 < -TOLERANCE or box.y0 < -TOLERANCE or box.x1 > W + TOLERANCE or box.y1 > H + TOLERANCE:
            problems.append(f"{what} is clipped at the figure's edge")
        for other, pbox in panels:
            if other is ax:
                continue
            if _overlap(box, pbox):
                problems.append(f"{what} overlaps the panel {other.get_title()!r}")
    for i, (t, ax, what, box) in enumerate(texts):
        for t2, ax2, what2, box2 in texts[i + 1:]:
            # rotated neighbours on one axis: their axis-aligned boxes overlap, their glyphs not
            if ax is ax2 and what.split()[:2] == what2.split()[:2] and "tick" in what \
                    and t.get_rotation() % 180 and t2.get_rotation() % 180:
                continue
            if _overlap(box, box2):
                problems.append(f"{what} overlaps {what2}")
    return problems
