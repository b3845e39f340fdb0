"""The audit's outputs: ``audit.json``, ``clusters.csv``, ``members.csv``, figures and one
self-contained ``audit.html`` (images embedded, no scripts; :mod:`chexplain.report.html`).

``audit.json`` lists per class (keyed by the observation's name) its population, eigenvalue
spectrum, number of clusters, ``clusters`` (each with ``members``: the CSV's ``Path`` values,
the files' paths for a folder, NIH's image names; ``distinctive_region``: ``bbox`` [row0,
col0, row1, col1] at ``side`` px, ``cells`` on the counterfactual ``grid``, ``words``, where
it lies, its overlap with the finding masks and the relevance shares in it; ``verdict``
(flagged | distinct strategy | not a suspect) and ``why``; ``flagged``, ``suspect`` (flagged
or distinct), ``kind`` (where the region lies), ``strategy``, mean region shares, label rate,
counterfactual result and one sentence), ``strategies`` (unions of clusters of one verdict
whose regions coincide: ``clusters``, ``members``, ``examples``, ``flagged``, ``verdict``,
``why``, ``distinctive_region``, counterfactual, sentence), the class's median region shares
(``baseline``) and the σ of its logits. Nothing in these files depends on timings, so a
resumed run writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..io import write_csv, write_json, write_text
from ..report.html import _CSS, esc, figure, table
from .analysis import ClassAudit
from .figures import SCALE, embedding_figure, prototypes_figure, save, spectrum_figure, strategy_figure


def _slug(name: str) -> str:
    from ..io import slug

    return slug(name)


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
                         c["verdict"], (c["distinctive_region"] or {}).get("words", ""),
                         *[_fmt(c["regions"].get(r)) for r in regions],
                         _fmt(c["positive_rate"]), cf.get("control", ""), _fmt(cf.get("logit_drop_hot")),
                         _fmt(cf.get("logit_drop_control")), _fmt(cf.get("effect")),
                         _fmt(cf.get("ci_low")), _fmt(cf.get("ci_high")), _fmt(cf.get("p_value"))])
    write_csv(out / "clusters.csv", rows, ["class", "cluster", "size", "fraction", "suspect",
                                          "strategy", "flagged", "verdict", "distinctive_region",
                                          *regions, "positive_rate", "control", "logit_drop_hot",
                                          "logit_drop_control", "effect", "ci_low", "ci_high", "p_value"])
    mrows = []
    for a in audits:
        if a.spray is None:
            continue
        own = {k: d for c in a.clusters if c["counterfactual"]
               for k, d in zip(c["counterfactual"].get("tested", []), c["counterfactual"].get("per_image", []))}
        for j, p in enumerate(a.positions):
            key = keys[int(p)]
            mrows.append([a.name, key, int(a.spray.labels[j]),
                          f"{a.spray.embedding[j, 0]:.5g}", f"{a.spray.embedding[j, 1]:.5g}",
                          *[_fmt(a.shares[r][j]) if r in a.shares else "" for r in regions],
                          _fmt(own.get(key))])
    write_csv(out / "members.csv", mrows, ["class", "image", "cluster", "x", "y", *regions,
                                           "test_effect"])
    write_text(out / "audit.html", _html(out, audits, class_index, summary, meta_factors,
                                         regions, labels))
    return result


def _html(out: Path, audits, class_index, summary, meta_factors, regions, labels) -> str:
    figs = out / "figures"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>chexplain audit</title><style>{_CSS}</style></head><body>",
             "<h1>chexplain audit: Spectral Relevance Analysis</h1>",
             table(["", ""], [[k, v] for k, v in summary.items()])]
    for verdict, title, none in (
            ("flagged", "Flagged strategies",
             "Nothing flagged: no cluster's distinctive region, off its members' findings, "
             "changes the logit more than random regions when removed."),
            ("distinct strategy", "Distinct strategies (no finding mask: for a human to judge)", "")):
        found = [(a.name, st["sentence"]) for a in audits for st in a.strategies if st["verdict"] == verdict]
        if found or none:
            parts.append(f"<h2>{esc(title)}</h2>" + ("<ul>" + "".join(
                f"<li><b>{esc(n)}</b>: {esc(s)}</li>" for n, s in found) + "</ul>" if found else
                f'<p class="note">{esc(none)}</p>'))
    parts.append(f'<p class="note">Relevance images: bwr, symmetric at each map\'s largest |R|, '
                 f"in the {esc(SCALE)} (colour bar beside each); distinctive regions outlined in "
                 "black.</p>")
    for a in audits:
        parts.append(f'<section id="{esc(_slug(a.name))}"><h2>{esc(a.name)}</h2>')
        parts.append(f'<p class="note">{len(a.positions)} images ({esc(a.population)}). {esc(a.note)}</p>')
        if a.spray is None:
            parts.append("</section>")
            continue
        t = class_index[a.name]
        lab = labels[a.positions, t]
        factors = {"label": np.where(np.isnan(lab), "unknown", np.where(lab == 1, "positive", "negative")),
                   **{k: v[a.positions] for k, v in meta_factors.items()}}
        s = _slug(a.name)
        for st in a.strategies:
            parts.append(f"<h3>{esc(st['verdict'].capitalize())}: strategy {st['id']}</h3>"
                         f"<p>{esc(st['sentence'])}</p>")
            parts.append(figure(save(strategy_figure(a, st), figs / f"{s}_strategy{st['id']}.png"),
                                f"{a.name}, strategy {st['id']}: prototype and members, "
                                f"distinctive region ({st['distinctive_region']['words']}) outlined"))
        parts.append(figure(save(spectrum_figure(a), figs / f"{s}_eigenvalues.png"),
                            f"{a.name}: eigenvalue spectrum and eigengap"))
        emb = embedding_figure(a, factors)
        if emb is not None:
            parts.append(figure(save(emb, figs / f"{s}_embedding.png"),
                                f"{a.name}: embedding by cluster and the factors that vary"))
        parts.append(figure(save(prototypes_figure(a), figs / f"{s}_prototypes.png"),
                            f"{a.name}: share prototype (distinctive region outlined) and most "
                            "typical members"))
        head = ["cluster", "size", "verdict", "distinctive region", "share there (others)",
                "on finding", "effect [95 % CI]", "floor", "p"]
        rows = []
        for c in a.clusters:
            cf, r = c["counterfactual"] or {}, c["distinctive_region"] or {}
            ci = f"{cf['effect']:.2f} [{cf['ci_low']:.2f}, {cf['ci_high']:.2f}]" if cf else "–"
            there = f"{_fmt(r.get('share'), pct=True)} ({_fmt(r.get('share_others'), pct=True)})" if r else "–"
            rows.append([c["id"], c["size"], c["verdict"], r.get("words", "–"), there,
                         _fmt(r.get("evidence_overlap"), pct=True), ci, _fmt(cf.get("floor")),
                         _fmt(cf.get("p_value"))])
        parts.append(table(head, rows, [{2} if c["flagged"] else set() for c in a.clusters]))
        parts.append(f'<p class="note">The class\'s logits have σ = {a.logit_sd:.2f}.</p><ul>' + "".join(
            f"<li>{esc(c['sentence'])}</li>" for c in a.clusters) + "</ul>")
        if a.association:
            parts.append(table(["factor", "χ²", "dof", "p", "Cramér's V"],
                               [[k, f"{v['chi2']:.3g}", v["dof"], f"{v['p_value']:.3g}",
                                 f"{v['cramers_v']:.2f}"] for k, v in a.association.items()]))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
