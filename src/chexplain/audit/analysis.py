"""One class of an audit: its population, SpRAy, region shares, associations, each cluster's
distinctive evidence and its counterfactual test, strategies, verdicts and sentences.

SpRAy's clusters are the paper's (:mod:`chexplain.audit.spray`); the flagging stage is ours
and looks for a shortcut wherever it sits:

0. Maps whose positive relevance is below ``min_evidence`` × the class's median (no evidence
   for the class: an image the model calls negative) carry no shares; a cluster most of
   whose members have none is not a suspect (its normalised maps are noise or zero).
1. Every other cluster is compared with the rest of its class: its **distinctive region** is
   where its share prototype exceeds the size-weighted mean of the other clusters'
   (:mod:`chexplain.audit.distinctive`), wherever that is.
2. The region is tested counterfactually on the cluster's members (each member's test cells:
   the part of the region holding most of its own relevance there, its finding's pixels kept
   where a finding mask is known; a region on the findings is then compared with images
   whose finding covers the same cells: :mod:`chexplain.audit.member_test`; blur vs as many
   random cells, effect, CI, p, the floor relative to the logits' spread:
   :mod:`chexplain.audit.counterfactual`); the verdict (flagged, distinct strategy, not a
   suspect) and its reason: :mod:`chexplain.audit.sentences`.
3. A **strategy** is the union of the used clusters whose distinctive regions coincide (overlap
   once grown by ``merge_margin`` cells, or overlap a left-right or up-down mirror image of
   each other): SpRAy splits one marker seen at different places (or a tag in different
   corners) into several clusters, because their maps differ (``strategies=False``: one
   strategy per used cluster). A strategy of several clusters is tested again on all their
   members; its clusters are flagged with it.

The region kinds of :mod:`chexplain.audit.regions` (border, corners, outside the body,
bright) only describe where a region lies. Only the relevance, the images, the labels and
the finding masks are read: nothing about where a shortcut was planted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .arrays import ClassArrays, as_arrays
from .counterfactual import CounterfactualConfig
from .distinctive import (DistinctConfig, bbox, contrast, distinctive_cells, name_region, parts,
                          tight_mask, unite, upsample)
from .member_test import ClassContext, member_test, rows
from .passes import DistinctShares, _fold, distinct_shares, prototypes_pass, regions_pass, unpack
from .regions import CORNERS, RegionConfig, fixed_masks
from .sentences import DISTINCT, FLAGGED, NOT, cluster_sentence, strategy_sentence, verdict
from .sources import age_bins
from .spray import SprayConfig, SprayResult, spray

POPULATIONS = ("auto", "positive", "predicted", "all")
EXAMPLES = 8  #: members shown per strategy in the report


@dataclass(frozen=True)
class AnalysisConfig:
    population: str = "auto"  #: auto: labelled positives if ≥ min_images, else predicted, else all
    min_images: int = 10
    min_evidence: float = 0.01  #: positive relevance below this × the class median: no shares
    strategies: bool = True  #: unite the clusters whose distinctive regions coincide
    evidence_only: bool = True  #: SpRAy clusters the maps with evidence; the others form one cluster
    distinct: DistinctConfig = DistinctConfig()
    spray: SprayConfig = SprayConfig()
    regions: RegionConfig = RegionConfig()
    counterfactual: CounterfactualConfig = CounterfactualConfig()


@dataclass
class ClassAudit:
    name: str
    population: str
    positions: np.ndarray  #: dataset positions of the audited images
    spray: SprayResult | None
    shares: dict[str, np.ndarray]  #: per region, per audited image
    clusters: list[dict[str, Any]] = field(default_factory=list)
    strategies: list[dict[str, Any]] = field(default_factory=list)
    association: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)  #: class median share per region
    logit_sd: float | None = None
    note: str = ""
    thumbs: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  #: (image64, maps64) per population index shown
    protos: dict[int, np.ndarray] = field(default_factory=dict)  #: share prototype per cluster (64 px, folded)
    cells: dict[int, np.ndarray] = field(default_factory=dict)  #: distinctive region per cluster (grid cells, folded)
    examples: dict[int, list[int]] = field(default_factory=dict)  #: per strategy, population indices shown
    apart: int | None = None  #: the cluster of the maps without evidence, kept apart from SpRAy's


def select_population(labels: np.ndarray, prob: np.ndarray, config: AnalysisConfig) -> tuple[np.ndarray, str]:
    """(positions, description) of the images whose maps are clustered."""
    pos = np.flatnonzero(labels == 1)
    pred = np.flatnonzero(prob >= 0.5)
    mode = config.population
    if mode == "auto":
        mode = "positive" if len(pos) >= config.min_images else \
            "predicted" if len(pred) >= config.min_images else "all"
    chosen = {"positive": pos, "predicted": pred, "all": np.arange(len(labels))}[mode]
    text = {"positive": "labelled positive", "predicted": "predicted positive (p ≥ 0.5)",
            "all": "all images"}[mode]
    return chosen, text


def association(clusters: np.ndarray, values: pd.Series) -> dict[str, Any] | None:
    """Chi-square test of clusters × values and Cramér's V (None when either has one level)."""
    from scipy.stats import chi2_contingency
    from scipy.stats.contingency import association as cramer

    v = values.astype(str).to_numpy()
    keep = ~pd.Series(v).isin(["nan", "", "None"]).to_numpy()
    table = pd.crosstab(clusters[keep], v[keep])
    if table.shape[0] < 2 or table.shape[1] < 2:
        return None
    chi2, p, dof, _ = chi2_contingency(table.to_numpy())
    return {"chi2": float(chi2), "dof": int(dof), "p_value": float(p),
            "cramers_v": float(cramer(table.to_numpy(), method="cramer")),
            "levels": [str(c) for c in table.columns],
            "counts": {str(r): [int(x) for x in table.loc[r]] for r in table.index}}


def _cluster(maps32: np.ndarray, evidence: np.ndarray, config: AnalysisConfig) -> SprayResult:
    """SpRAy of the population's maps. With ``evidence_only`` (when at least 3 maps, and at
    least ``neighbours`` + 1, have evidence and some have none) SpRAy clusters the maps with
    evidence only, and the others form one last cluster (zero prototype, no embedding: NaN):
    maps without positive relevance would otherwise take a cluster of the eigengap's few and
    leave images with and without a shortcut together."""
    n_ev = int(evidence.sum())
    if not config.evidence_only or evidence.all() or n_ev < max(3, config.spray.neighbours + 1):
        return spray(maps32, config.spray)
    ev = np.flatnonzero(evidence)
    rest = np.flatnonzero(~evidence)
    r = spray(maps32[ev], config.spray)
    k = r.n_clusters
    labels = np.full(len(evidence), k, dtype=r.labels.dtype)
    labels[ev] = r.labels
    embedding = np.full((len(evidence), 2), np.nan)
    embedding[ev] = r.embedding
    flipped = np.zeros(len(evidence), bool)
    if r.flipped is not None:
        flipped[ev] = r.flipped
    typical = [[int(ev[i]) for i in t] for t in r.typical] + [[int(i) for i in rest[:config.spray.typical]]]
    note = (f"{len(rest)} map(s) without positive relevance for the class form cluster {k}, "
            f"apart from SpRAy's clusters of the other {n_ev}" + (f"; {r.note}" if r.note else ""))
    return SprayResult(labels, r.eigenvalues, k + 1, embedding, r.embedding_kind,
                       np.concatenate([r.prototypes, np.zeros((1, *r.prototypes.shape[1:]))]),
                       typical, None, flipped if r.flipped is not None else None, note)


def _describe(cells: np.ndarray, diff: np.ndarray, members: np.ndarray, ctx: ClassContext,
              regions: RegionConfig) -> dict[str, Any]:
    """The region's bbox (64 px, folded frame), cells, words and where it lies (the share of
    its pixels in each region kind, per member)."""
    side = diff.shape[-1]
    px = upsample(cells, side)
    box = bbox(tight_mask(diff, cells, ctx.distinct.threshold))
    sample = members[:512]
    fl = ctx.flipped[sample]
    masks = {k: _fold(unpack(ctx.streamed.packed[k][sample], side), fl) for k in ("outside body", "bright")}

    def frac(k: str, m: np.ndarray) -> float:
        return float(((masks[k] & m).reshape(len(sample), -1).sum(1) / m.sum()).mean())

    named = []  # each part of the region in words, largest first
    for part in parts(cells)[:4]:
        m = upsample(part, side)
        named.append(name_region(bbox(tight_mask(diff, part, ctx.distinct.threshold)), side,
                                 1.0 - frac("outside body", m), frac("bright", m)))
    whole = {k: frac(k, px) for k in ("outside body", "bright")}
    fixed = fixed_masks(side, regions)
    corners = np.logical_or.reduce([fixed[c] for c in CORNERS])
    kinds = {"corners": float((px & corners).sum() / px.sum()),
             "border": float((px & fixed["border"]).sum() / px.sum()), **whole}
    top = max(kinds, key=kinds.get)
    words = "; ".join(named)
    if ctx.flipped.any():
        words += " (maps folded left/right: or its mirror image)"
    return {"bbox": box, "side": side, "grid": int(cells.shape[0]),
            "cells": [[int(r), int(c)] for r, c in zip(*np.nonzero(cells))],
            "area": float(px.mean()), "words": words, "inside_body": 1.0 - whole["outside body"],
            "kinds": kinds, "kind": top if kinds[top] >= 0.5 else "inside the body"}


def _mean(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else None


def audit_class(name: str, t: int, data: ClassArrays | dict[str, np.ndarray], labels: np.ndarray,
                meta: pd.DataFrame, keys: list[str], config: AnalysisConfig,
                load_images: Callable[[np.ndarray], Any], model: Any, cls: int,
                lungs: np.ndarray | None = None, findings: np.ndarray | None = None) -> ClassAudit:
    """Audit class ``name`` (column ``t`` of the store, output ``cls`` of the model).

    ``data`` gives the stored arrays (:mod:`chexplain.audit.arrays`; a dict of arrays in
    memory too): SpRAy's 32-px maps of the population are read at once, the 64-px maps,
    images and finding masks a block at a time. ``findings``: finding masks (N, 64, 64) of
    the whole data set that replace the stored ones where they have pixels."""
    arrays = as_arrays(data)
    logits = arrays.rows("logits", np.arange(arrays.n_images), t).astype(np.float64)
    prob = 1.0 / (1.0 + np.exp(-logits))
    positions, text = select_population(labels[:, t], prob, config)
    if len(positions) < max(3, config.min_images):
        return ClassAudit(name, text, positions, None, {}, note=f"only {len(positions)} images "
                          f"({text}); at least {max(3, config.min_images)} are needed")
    streamed = regions_pass(arrays, positions, t, config.regions, lungs)
    mass = streamed.mass
    evidence = mass > config.min_evidence * float(np.median(mass))
    res = _cluster(arrays.rows("maps32", positions, t), evidence, config)
    protos, thumbs = prototypes_pass(arrays, positions, t, res, evidence, mass)
    sh = {r: np.where(evidence, v, np.nan) for r, v in streamed.shares.items()}
    baseline = {r: float(np.nanmedian(v)) if np.isfinite(v).any() else 0.0 for r, v in sh.items()}
    sd = float(np.std(logits, ddof=1)) if len(logits) > 1 else 0.0
    note = res.note or ("" if evidence.any() else
                        "no map has positive relevance for the class: no region shares")
    audit = ClassAudit(name, text, positions, res, sh, baseline=baseline, logit_sd=sd, note=note,
                       thumbs=thumbs, protos=protos,
                       apart=res.n_clusters - 1 if np.isnan(res.embedding).any() else None)
    k, dc, cfc = res.n_clusters, config.distinct, config.counterfactual
    flipped = res.flipped if res.flipped is not None else np.zeros(len(res.labels), bool)
    ev = np.array([evidence[res.labels == c].mean() for c in range(k)])
    sizes = np.bincount(res.labels, minlength=k)  # the rest of the class: every other image
    diffs = {c: contrast(protos, sizes, c) for c in range(k) if ev[c] >= 0.5}
    for c, d in diffs.items():
        r = distinctive_cells(d, cfc.grid, dc.threshold, cfc.max_cells, dc.min_part)
        if r is not None:
            audit.cells[c] = r
    split = distinct_shares(audit.cells, arrays, positions, t, res, evidence, mass, findings, dc)
    ctx = ClassContext(arrays, positions, t, res, flipped, evidence, streamed, audit.cells, dc, cfc,
                       load_images, model, cls, sd, findings, logits[positions])
    lab = labels[positions, t]
    for c in range(k):
        members = np.flatnonzero(res.labels == c)
        known = lab[members][~np.isnan(lab[members])]
        region, cf = None, None
        if ev[c] < 0.5:
            v, why = NOT, "most members carry no positive relevance for the class"
        elif c not in audit.cells:
            v, why = NOT, "its prototype nowhere exceeds the other clusters'"
        else:
            region = _describe(audit.cells[c], diffs[c], members, ctx, config.regions) | {
                "evidence_overlap": split.overlap[c], "share": _mean(split.share[members, c]),
                "share_others": _mean(split.share[res.labels != c, c]) if k > 1 else None}
            test = member_test(members, ctx, c)
            cf = _named(test.result, keys, positions)
            v, why = verdict(test, split.overlap[c], dc.evidence_overlap, cfc.alpha)
        audit.clusters.append({
            "id": c, "size": int(len(members)), "fraction": len(members) / len(positions),
            "members": [keys[int(positions[i])] for i in members],
            "typical": [keys[int(positions[i])] for i in res.typical[c]],
            "regions": _mean_regions(sh, members),
            "positive_rate": float(known.mean()) if len(known) else None,
            "mean_probability": float(prob[positions[members]].mean()),
            "evidence": float(ev[c]), "suspect": v != NOT,
            "kind": None if region is None else region["kind"], "strategy": None,
            "counterfactual": cf, "flagged": v == FLAGGED, "verdict": v, "why": why,
            "distinctive_region": region})
    _strategies(audit, ctx, config, split, diffs, keys)
    for rec in audit.clusters:
        rec["sentence"] = cluster_sentence(rec, len(positions))
    sub = meta.iloc[positions].reset_index(drop=True) if len(meta.columns) else pd.DataFrame()
    factors = {"label": pd.Series(lab).map({1.0: "positive", 0.0: "negative"})}
    for col in sub.columns:
        factors[col] = age_bins(sub[col]) if col == "Age" else sub[col]
    for fname, values in factors.items():
        a = association(res.labels, values)
        if a is not None:
            audit.association[fname] = a
    return audit


def _strategies(audit: ClassAudit, ctx: ClassContext, config: AnalysisConfig, stats: DistinctShares,
                diffs: dict[int, np.ndarray], keys: list[str]) -> None:
    """Unite the used clusters whose regions coincide, test each union of several clusters
    on its members (a union the test rejects leaves its used clusters standing alone), keep the
    used ones (flagged or distinct) as strategies and pick the members the report shows."""
    res, positions = ctx.res, ctx.positions
    used = [c["id"] for c in audit.clusters if c["verdict"] in (FLAGGED, DISTINCT)]
    if config.strategies:  # the used clusters whose regions coincide
        groups = unite({c: audit.cells[c] for c in used}, config.distinct.merge_margin,
                       config.distinct.merge_mirrored)
    else:
        groups = [[c] for c in used]
    s_id = 0
    for ids in groups:
        members = np.flatnonzero(np.isin(res.labels, ids))
        sizes = {c: audit.clusters[c]["size"] for c in ids}
        on = [(stats.overlap[c], sizes[c]) for c in ids if stats.overlap[c] is not None]
        overlap = sum(o * n for o, n in on) / sum(n for _, n in on) if on else None
        if len(ids) == 1:
            c = audit.clusters[ids[0]]
            cf, v, why, region = c["counterfactual"], c["verdict"], c["why"], c["distinctive_region"]
        else:
            test = member_test(members, ctx, 100 + s_id)
            cf = _named(test.result, keys, positions)
            v, why = verdict(test, overlap, config.distinct.evidence_overlap, config.counterfactual.alpha)
            union = np.logical_or.reduce([audit.cells[c] for c in ids])
            diff = sum(sizes[c] * diffs[c] for c in ids) / sum(sizes.values())
            own = stats.share[members, res.labels[members]]
            words = "; ".join(dict.fromkeys(audit.clusters[c]["distinctive_region"]["words"] for c in ids))
            region = _describe(union, diff, members, ctx, config.regions) | {
                "words": words, "evidence_overlap": overlap, "share": _mean(own), "share_others": None}
        if v == NOT:  # the union is not used: its clusters the test found used stand alone
            groups += [[c] for c in ids if c in used and len(ids) > 1]
            continue
        share = np.nan_to_num(stats.share[members, res.labels[members]], nan=-1.0)
        rank = np.zeros(len(members))  # the clusters in turn, each's most relevant first
        for c in ids:
            sel = np.flatnonzero(res.labels[members] == c)
            rank[sel[np.argsort(-share[sel], kind="stable")]] = np.arange(len(sel))
        best = members[np.lexsort((-share, rank))[:EXAMPLES]]
        audit.examples[s_id] = sorted(int(i) for i in best)
        st = {"id": s_id, "kind": region["kind"], "clusters": ids, "size": int(len(members)),
              "fraction": len(members) / len(positions),
              "members": [keys[int(positions[i])] for i in members],
              "examples": [keys[int(positions[i])] for i in audit.examples[s_id]],
              "regions": _mean_regions(audit.shares, members), "counterfactual": cf,
              "flagged": v == FLAGGED, "verdict": v, "why": why, "distinctive_region": region}
        st["sentence"] = strategy_sentence(st, len(positions))
        audit.strategies.append(st)
        for c in ids:
            audit.clusters[c].update(strategy=s_id, flagged=st["flagged"], suspect=True)
        s_id += 1
    wanted = sorted({i for e in audit.examples.values() for i in e} - set(audit.thumbs))
    if wanted:
        pos = positions[np.array(wanted)]
        img = rows(ctx.arrays, "image64", pos)
        maps = rows(ctx.arrays, "maps64", pos, ctx.t)
        for w, i in enumerate(wanted):
            audit.thumbs[i] = (np.array(img[w]), np.array(maps[w]))


def _named(cf: dict[str, Any] | None, keys: list[str], positions: np.ndarray) -> dict[str, Any] | None:
    """The test's result with its tested images named by their keys, not population indices."""
    if cf and "tested" in cf:
        cf = cf | {"tested": [keys[int(positions[i])] for i in cf["tested"]]}
    return cf


def _mean_regions(sh: dict[str, np.ndarray], members: np.ndarray) -> dict[str, float | None]:
    with np.errstate(all="ignore"):
        return {r: (None if np.all(np.isnan(v[members])) else float(np.nanmean(v[members])))
                for r, v in sh.items()}
