"""The audit's outputs: ``audit.json``, ``clusters.csv``, ``members.csv``, figures and one
self-contained ``audit.html`` (images embedded, no scripts; :mod:`chexplain.report.html`).

``audit.json`` lists per class (keyed by the observation's name) its population, eigenvalue
spectrum, number of clusters, ``clusters`` (each with ``members``: the CSV's ``Path`` values,
the files' paths for a folder, NIH's image names; ``flagged``, ``suspect``, ``kind``,
``strategy``, its mean region shares, label rate, counterfactual result and one sentence),
``strategies`` (unions of suspect clusters of one shortcut kind: ``clusters``, ``members``,
``flagged``, region shares, counterfactual, sentence), the class's median region shares
(``baseline``) and the σ of its logits. Nothing in these files depends on timings, so a
resumed run writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..io import atomic_path, write_csv, write_json, write_text
from ..report.html import _CSS, esc, figure, table
from .analysis import ClassAudit


def _slug(name: str) -> str:
    from ..explain_images import slug

    return slug(name)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


def spectrum_plot(audit: ClassAudit, path: Path) -> Path:
    import matplotlib.pyplot as plt

    lam = audit.spray.eigenvalues
    fig, ax = plt.subplots(figsize=(4.2, 3))
    ks = np.arange(1, len(lam) + 1)
    ax.plot(ks, lam, "o-", ms=4)
    k = audit.spray.n_clusters
    ax.axvline(k + 0.5, color="tab:red", ls="--", lw=1, label=f"eigengap: k = {k}")
    ax.set_xlabel("k")
    ax.set_ylabel("eigenvalue λ_k\n(normalised Laplacian)", fontsize=9)
    ax.legend(fontsize=8)
    ax.set_title(audit.name, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def embedding_plot(audit: ClassAudit, factors: dict[str, np.ndarray], path: Path) -> Path:
    import matplotlib.pyplot as plt

    emb = audit.spray.embedding
    panels = {"cluster": audit.spray.labels.astype(str), **factors}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.1), squeeze=False)
    flagged = {c["id"] for c in audit.clusters if c["flagged"]}
    for ax, (title, values) in zip(axes[0], panels.items()):
        levels = sorted(set(values.tolist()))
        for j, lv in enumerate(levels):
            sel = values == lv
            label = f"{lv}{' (flagged)' if title == 'cluster' and int(lv) in flagged else ''}"
            ax.scatter(emb[sel, 0], emb[sel, 1], s=8, color=plt.cm.tab10(j % 10), label=label)
        ax.set_title(f"{audit.spray.embedding_kind} embedding: {title}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def prototypes_plot(audit: ClassAudit, path: Path) -> Path:
    """Per cluster: the prototype and its most typical members' overlays (``audit.thumbs``)."""
    import matplotlib.pyplot as plt

    from ..figures import method_overlay

    res = audit.spray
    cols = 1 + max(len(t) for t in res.typical)
    fig, axes = plt.subplots(res.n_clusters, cols, figsize=(1.6 * cols, 1.7 * res.n_clusters),
                             squeeze=False)
    for c in range(res.n_clusters):
        proto = res.prototypes[c]
        lim = float(np.abs(proto).max()) or 1.0
        axes[c, 0].imshow(proto, cmap="bwr", vmin=-lim, vmax=lim)
        axes[c, 0].set_title(f"cluster {c} ({audit.clusters[c]['size']})"
                             f"{' FLAGGED' if audit.clusters[c]['flagged'] else ''}", fontsize=7)
        for j in range(1, cols):
            ax = axes[c, j]
            if j - 1 < len(res.typical[c]):
                image64, map64 = audit.thumbs[res.typical[c][j - 1]]
                ax.imshow(method_overlay("epsilon-plus-flat", map64, image64))
        for ax in axes[c]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path)


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return f"{v:.0%}" if pct else (f"{v:.3g}" if isinstance(v, float) else str(v))


def class_json(a: ClassAudit) -> dict[str, Any]:
    out: dict[str, Any] = {"population": a.population, "images": int(len(a.positions)), "note": a.note}
    if a.spray is None:
        return out | {"clusters": []}
    out |= {"n_clusters": a.spray.n_clusters, "eigenvalues": [float(x) for x in a.spray.eigenvalues],
            "embedding": a.spray.embedding_kind, "association": a.association,
            "baseline": a.baseline, "logit_sd": a.logit_sd, "clusters": a.clusters,
            "strategies": a.strategies}
    return out


def write_outputs(out: Path, audits: Sequence[ClassAudit],
                  class_index: dict[str, int], keys: list[str], summary: dict[str, Any],
                  meta_factors: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, Any]:
    """audit.json, clusters.csv, members.csv, figures/ and audit.html under ``out``."""
    result = {"summary": summary, "classes": {a.name: class_json(a) for a in audits}}
    write_json(out / "audit.json", result)
    regions = sorted({r for a in audits for c in a.clusters for r in c["regions"]})
    rows = []
    for a in audits:
        for c in a.clusters:
            cf = c["counterfactual"] or {}
            rows.append([a.name, c["id"], c["size"], f"{c['fraction']:.4f}", int(c["suspect"]),
                         "" if c["strategy"] is None else c["strategy"], int(c["flagged"]),
                         *[_fmt(c["regions"].get(r)) for r in regions],
                         _fmt(c["positive_rate"]), _fmt(cf.get("logit_drop_hot")),
                         _fmt(cf.get("logit_drop_random")), _fmt(cf.get("effect")),
                         _fmt(cf.get("ci_low")), _fmt(cf.get("ci_high")), _fmt(cf.get("p_value"))])
    write_csv(out / "clusters.csv", rows, ["class", "cluster", "size", "fraction", "suspect",
                                          "strategy", "flagged",
                                          *regions, "positive_rate", "logit_drop_hot",
                                          "logit_drop_random", "effect", "ci_low", "ci_high", "p_value"])
    mrows = []
    for a in audits:
        if a.spray is None:
            continue
        for j, p in enumerate(a.positions):
            mrows.append([a.name, keys[int(p)], int(a.spray.labels[j]),
                          f"{a.spray.embedding[j, 0]:.5g}", f"{a.spray.embedding[j, 1]:.5g}",
                          *[_fmt(a.shares[r][j]) if r in a.shares else "" for r in regions]])
    write_csv(out / "members.csv", mrows, ["class", "image", "cluster", "x", "y", *regions])
    write_text(out / "audit.html", _html(out, audits, class_index, summary, meta_factors,
                                         regions, labels))
    return result


def _html(out: Path, audits, class_index, summary, meta_factors, regions, labels) -> str:
    figs = out / "figures"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>chexplain audit</title><style>{_CSS}</style></head><body>",
             "<h1>chexplain audit: Spectral Relevance Analysis</h1>",
             table(["", ""], [[k, v] for k, v in summary.items()])]
    flagged = [(a.name, st["sentence"]) for a in audits for st in a.strategies if st["flagged"]]
    parts.append("<h2>Flagged strategies</h2>" + ("<ul>" + "".join(
        f"<li><b>{esc(n)}</b>: {esc(s)}</li>" for n, s in flagged) + "</ul>" if flagged else
        '<p class="note">Nothing flagged: no strategy of the border, corners or outside '
        "of the body that removing changes the logit more than random regions.</p>"))
    for a in audits:
        parts.append(f'<section id="{esc(_slug(a.name))}"><h2>{esc(a.name)}</h2>')
        parts.append(f'<p class="note">{len(a.positions)} images ({esc(a.population)}). {esc(a.note)}</p>')
        if a.spray is None:
            parts.append("</section>")
            continue
        t = class_index[a.name]
        pos = a.positions
        lab = labels[pos, t]
        factors = {"label": np.where(np.isnan(lab), "unknown", np.where(lab == 1, "positive", "negative")),
                   **{k: v[pos] for k, v in meta_factors.items()}}
        s = _slug(a.name)
        parts.append(figure(spectrum_plot(a, figs / f"{s}_eigenvalues.png"),
                            f"{a.name}: eigenvalue spectrum and eigengap"))
        parts.append(figure(embedding_plot(a, factors, figs / f"{s}_embedding.png"),
                            f"{a.name}: embedding by cluster, label and metadata"))
        parts.append(figure(prototypes_plot(a, figs / f"{s}_prototypes.png"),
                            f"{a.name}: prototype (mean normalised map) and most typical members"))
        head = ["cluster", "size", "suspect", "flagged", *regions, "positive rate",
                "Δ logit hot", "Δ logit random", "effect [95 % CI]", "p"]
        rows = []
        for c in a.clusters:
            cf = c["counterfactual"] or {}
            ci = f"{cf['effect']:.2f} [{cf['ci_low']:.2f}, {cf['ci_high']:.2f}]" if cf else "–"
            rows.append([c["id"], c["size"], "yes" if c["suspect"] else "", "yes" if c["flagged"] else "",
                         *[_fmt(c["regions"].get(r), pct=True) for r in regions],
                         _fmt(c["positive_rate"], pct=True), _fmt(cf.get("logit_drop_hot")),
                         _fmt(cf.get("logit_drop_random")), ci, _fmt(cf.get("p_value"))])
        parts.append(table(head, rows, [{3} if c["flagged"] else set() for c in a.clusters]))
        parts.append("<ul>" + "".join(f"<li>{esc(c['sentence'])}</li>" for c in a.clusters) + "</ul>")
        if a.strategies:
            parts.append("<p>Strategies (suspect clusters united by shortcut kind; the class's "
                         f"logits have σ = {a.logit_sd:.2f}):</p><ul>" + "".join(
                             f"<li>{'<b>FLAGGED</b> ' if st['flagged'] else ''}{esc(st['sentence'])}</li>"
                             for st in a.strategies) + "</ul>")
        if a.association:
            parts.append(table(["factor", "χ²", "dof", "p", "Cramér's V"],
                               [[k, f"{v['chi2']:.3g}", v["dof"], f"{v['p_value']:.3g}",
                                 f"{v['cramers_v']:.2f}"] for k, v in a.association.items()]))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
