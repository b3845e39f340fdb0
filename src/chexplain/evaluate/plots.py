"""Plots of :func:`chexplain.evaluate.compare.compare`: AOPC curves, localisation bars with
95 % bootstrap intervals, and cascading-randomisation curves (matplotlib Agg, atomic PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_aopc(path: Path, result: dict[str, Any]) -> Path:
    """Mean logit drop f(x⁰) − f(xᵏ) against the perturbed share, MoRF and LeRF."""
    fig = _figure(9, 3.6)
    x = result["aopc_curves"]["removed_fraction"]
    for j, order in enumerate(("morf", "lerf")):
        ax = fig.add_subplot(1, 2, j + 1)
        for i, m in enumerate(result["config"]["methods"]):
            ax.plot(x, result["aopc_curves"][m][order], label=m, color=f"C{i}", lw=1.5)
        ax.set_title({"morf": "most relevant first (higher = more faithful)",
                      "lerf": "least relevant first (lower = more faithful)"}[order], fontsize=9)
        ax.set_xlabel("share of the image perturbed", fontsize=8)
        ax.set_ylabel("logit drop f(x0) - f(xk)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.axhline(0, color="0.7", lw=0.8)
    ax.legend(fontsize=7, loc="best")
    if result.get("perturbation"):
        fig.suptitle(result["perturbation"], fontsize=8)
    return _save(fig, Path(path))


def plot_localisation(path: Path, result: dict[str, Any]) -> Path:
    """Bars per method for each localisation metric, with 95 % bootstrap intervals."""
    metrics = ("pointing_game", "relevance_mass", "relevance_rank", "iou")
    methods = result["config"]["methods"]
    fig = _figure(10, 3.4)
    for j, k in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), j + 1)
        mean = np.array([np.nan if result["summary"][m][k]["mean"] is None
                         else result["summary"][m][k]["mean"] for m in methods], dtype=float)
        lo = np.array([result["summary"][m][k]["ci_low"] or np.nan for m in methods], dtype=float)
        hi = np.array([result["summary"][m][k]["ci_high"] or np.nan for m in methods], dtype=float)
        err = np.nan_to_num(np.stack([mean - lo, hi - mean]).clip(min=0))
        ax.bar(range(len(methods)), np.nan_to_num(mean), yerr=err, capsize=2,
               color=[f"C{i}" for i in range(len(methods))])
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(k.replace("_", " "), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    return _save(fig, Path(path))


def plot_randomisation(path: Path, result: dict[str, Any]) -> Path:
    """Similarity to the original map as layer groups are randomised from the output down."""
    rnd = result["randomisation"]
    methods = list(rnd)
    layers = rnd[methods[0]]["layers"]
    fig = _figure(10, 3.8)
    for j, k in enumerate(("spearman_abs", "ssim")):
        ax = fig.add_subplot(1, 2, j + 1)
        for i, m in enumerate(methods):
            y = [np.nan if v is None else v for v in rnd[m][k]]
            ax.plot(range(len(y)), y, marker="o", ms=3, label=m, color=f"C{i}")
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels([s.split(".")[-1] for s in layers], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel({"spearman_abs": "Spearman rank corr. (|map|)", "ssim": "SSIM"}[k], fontsize=8)
        ax.set_xlabel("randomised down to (cascading, output first)", fontsize=8)
        ax.axhline(0, color="0.7", lw=0.8)
        ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    return _save(fig, Path(path))
