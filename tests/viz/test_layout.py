"""The figure layout check finds overlapping and clipped text, and passes a clean figure."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from chexplain.viz.layout import layout_problems


def _grid(tight: bool) -> Figure:
    fig = Figure(figsize=(4, 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    for ax in axes.flat:
        ax.imshow(np.zeros((8, 8)))
        ax.set_title("a title long enough\nto need two lines", fontsize=10)
    if tight:
        fig.tight_layout()
    else:
        fig.subplots_adjust(hspace=0.0, wspace=0.0, top=1.0)
    return fig


def test_overlapping_titles_and_clipping_are_found():
    problems = layout_problems(_grid(tight=False))
    assert any("overlaps the panel" in p for p in problems)
    assert any("clipped at the figure's edge" in p for p in problems)


def test_clean_figure_passes_and_ticks_outside_the_view_are_ignored():
    assert layout_problems(_grid(tight=True)) == []
    fig = Figure(figsize=(4, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    ax.set_xlim(0, 1)
    ax.set_xlabel("x")
    fig.tight_layout()
    assert layout_problems(fig) == []
