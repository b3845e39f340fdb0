"""The audit report's figures. Every relevance image is drawn in ``bwr`` scaled symmetrically
to its largest |R| (each map normalised to a positive sum of 1, so values are shares of the
map's positive relevance per pixel) with its own colour bar; distinctive regions are outlined
in black; a panel whose colour variable takes one value (every audited image positive) is
left out.

The builders return the matplotlib figure (tests inspect it); :func:`save` writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path
from .analysis import ClassAudit
from .distinctive import upsample

SCALE = "share of the map's positive relevance per pixel"


def save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


def _relevance(ax, R: np.ndarray, image: np.ndarray | None = None, outline: np.ndarray | None = None,
               title: str = "") -> None:
    """``R`` (normalised to a positive sum of 1) in bwr at ±max |R| over the faint grey image,
    the region ``outline`` (bool, R's grid) in black, and a colour bar."""
    R = np.asarray(R, dtype=np.float64)
    total = float(np.clip(R, 0, None).sum())
    R = R / total if total > 0 else R
    lim = float(np.abs(R).max()) or 1.0
    if image is not None:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    im = ax.imshow(R, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.75 if image is not None else 1.0)
    if outline is not None and outline.any():
        ax.contour(outline.astype(float), levels=[0.5], colors="k", linewidths=1.0)
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cb.ax.tick_params(labelsize=5)
    cb.set_ticks([-lim, 0, lim])
    cb.ax.set_yticklabels([f"{-lim:.1e}", "0", f"{lim:.1e}"])
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def _outline(audit: ClassAudit, cells: np.ndarray | None, side: int, index: int | None = None):
    if cells is None:
        return None
    m = upsample(cells, side)
    flipped = audit.spray.flipped
    if index is not None and flipped is not None and flipped[index]:
        m = m[:, ::-1]  # the region lives in SpRAy's folded frame
    return m


def spectrum_figure(audit: ClassAudit):
    import matplotlib.pyplot as plt

    lam = audit.spray.eigenvalues
    fig, ax = plt.subplots(figsize=(4.2, 3))
    ax.plot(np.arange(1, len(lam) + 1), lam, "o-", ms=4)
    k = audit.spray.n_clusters - (audit.apart is not None)  # SpRAy's; the maps without evidence apart
    ax.axvline(k + 0.5, color="tab:red", ls="--", lw=1, label=f"eigengap: k = {k}")
    ax.set_xlabel("k")
    ax.set_ylabel("eigenvalue λ_k\n(normalised Laplacian)", fontsize=9)
    ax.legend(fontsize=8)
    ax.set_title(audit.name, fontsize=9)
    fig.tight_layout()
    return fig


def informative(panels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The panels whose colour variable takes at least two values."""
    return {k: v for k, v in panels.items() if len(set(np.asarray(v).tolist())) > 1}


def embedding_figure(audit: ClassAudit, factors: dict[str, np.ndarray]):
    """The embedding coloured by cluster and by each factor that varies (None: nothing varies)."""
    import matplotlib.pyplot as plt

    emb = audit.spray.embedding
    panels = informative({"cluster": audit.spray.labels.astype(str), **factors})
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.1), squeeze=False)
    verdicts = {str(c["id"]): c["verdict"] for c in audit.clusters}
    for ax, (title, values) in zip(axes[0], panels.items()):
        for j, lv in enumerate(sorted(set(values.tolist()))):
            sel = values == lv
            extra = f" ({verdicts[lv]})" if title == "cluster" and verdicts.get(lv, "not a suspect") \
                != "not a suspect" else ""
            ax.scatter(emb[sel, 0], emb[sel, 1], s=8, color=plt.cm.tab10(j % 10), label=f"{lv}{extra}")
        ax.set_title(f"{audit.spray.embedding_kind} embedding: {title}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    fig.tight_layout()
    return fig


def prototypes_figure(audit: ClassAudit):
    """Per cluster: its share prototype with its distinctive region outlined, and its most
    typical members' maps on their images."""
    import matplotlib.pyplot as plt

    res = audit.spray
    cols = 1 + max(len(t) for t in res.typical)
    fig, axes = plt.subplots(res.n_clusters, cols, figsize=(2.0 * cols, 1.9 * res.n_clusters),
                             squeeze=False)
    for c in range(res.n_clusters):
        proto = audit.protos[c]
        rec = audit.clusters[c]
        _relevance(axes[c, 0], proto, None, _outline(audit, audit.cells.get(c), proto.shape[-1]),
                   f"cluster {c} ({rec['size']}): {rec['verdict']}")
        for j in range(1, cols):
            ax = axes[c, j]
            if j - 1 < len(res.typical[c]):
                q = res.typical[c][j - 1]
                image64, map64 = audit.thumbs[q]
                _relevance(ax, map64, image64, _outline(audit, audit.cells.get(c), map64.shape[-1], q))
            else:
                ax.axis("off")
    fig.tight_layout()
    return fig


def strategy_figure(audit: ClassAudit, st: dict[str, Any]):
    """A strategy: the size-weighted mean of its clusters' share prototypes with its
    distinctive region outlined, and up to 8 members (most relevance in the region) with
    their own cluster's region outlined."""
    import matplotlib.pyplot as plt

    ids = st["clusters"]
    sizes = np.array([audit.clusters[c]["size"] for c in ids], dtype=np.float64)
    proto = sum(w * audit.protos[c] for w, c in zip(sizes, ids)) / sizes.sum()
    union = np.logical_or.reduce([audit.cells[c] for c in ids])
    shown = audit.examples.get(st["id"], [])
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(2.0 * (1 + len(shown)), 2.1), squeeze=False)
    _relevance(axes[0, 0], proto, None, _outline(audit, union, proto.shape[-1]),
               f"strategy {st['id']}: prototype")
    labels = audit.spray.labels
    for ax, q in zip(axes[0, 1:], shown):
        image64, map64 = audit.thumbs[q]
        _relevance(ax, map64, image64, _outline(audit, audit.cells[int(labels[q])], map64.shape[-1], q),
                   f"cluster {int(labels[q])}")
    fig.tight_layout()
    return fig
