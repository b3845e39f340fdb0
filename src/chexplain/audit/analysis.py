"""One class of an audit: its population, SpRAy, region shares, associations, suspects,
strategies and their counterfactual test, and the sentences that explain them.

SpRAy's clusters are the paper's (:mod:`chexplain.audit.spray`); the flagging stage is ours:

0. Maps whose positive relevance is below ``min_evidence`` × the class's median (no evidence
   for the class: an image the model calls negative) have no region shares; a cluster most
   of whose members have none is no suspect (its normalised maps are noise or zero).
1. A cluster is a **suspect** when its members put on average at least ``flag_share`` of
   their positive relevance into the shortcut area (border, corners, outside the body), or
   at least ``min_share`` and ``enrichment`` × the median share of the class's audited images
   (relative: a cluster that leans on the shortcut area much more than the class's typical
   image does is a suspect even when the absolute share is modest; the median, not the mean,
   so that a shortcut on a minority of the images does not raise its own reference).
2. Each suspect is attributed to the shortcut **kind** (:data:`~chexplain.audit.regions.
   KINDS`: corners, border, outside body, bright) where its relevance is densest (share per
   area, among the kinds holding a quarter of its shortcut-area share). A **strategy** is the
   union of the suspects of one kind (``strategies=True``): SpRAy separates one marker seen
   in different corners into different clusters, because their maps differ; the strategy "a
   marker in a corner" is one (``strategies=False``: one strategy per suspect).
3. A strategy is **flagged** when the counterfactual test on its members shows the model
   uses it, beyond a floor relative to the spread of the class's logits
   (:mod:`chexplain.audit.counterfactual`); its clusters are flagged with it. Each member's
   hot region is the hottest part of its own cluster's prototype *inside that image's
   shortcut area* (the outside of the body is per image): what the strategy is suspected of,
   not the finding a marker cluster may also look at.

Only the relevance, the images and the labels are read: nothing about where a shortcut was
planted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .arrays import ClassArrays, as_arrays
from .counterfactual import CounterfactualConfig, counterfactual, hot_cells
from .regions import CORNERS, KINDS, RegionConfig, region_masks, region_shares
from .spray import SprayConfig, SprayResult, spray

POPULATIONS = ("auto", "positive", "predicted", "all")
_NAMED = ("border",) + CORNERS + ("outside body", "bright")


@dataclass(frozen=True)
class AnalysisConfig:
    population: str = "auto"  #: auto: labelled positives if ≥ min_images, else predicted, else all
    min_images: int = 10
    flag_share: float = 0.3  #: absolute: this share in the shortcut area makes a suspect
    enrichment: float = 1.5  #: relative: this multiple of the class's median share makes one too …
    min_share: float = 0.15  #: … when the share is at least this
    min_evidence: float = 0.01  #: positive relevance below this × the class median: no shares
    strategies: bool = True  #: union the suspects of one shortcut kind before the test
    counterfactual_on: str = "suspects"  #: suspects | all
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
    thumbs: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  #: typical members' (image64, maps64)


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


def age_bins(age: pd.Series) -> pd.Series:
    a = pd.to_numeric(age, errors="coerce")
    return pd.cut(a, [0, 40, 60, 75, 200], right=False, labels=["<40", "40-59", "60-74", "≥75"]).astype(str)


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


def is_suspect(share: float | None, baseline: float, config: AnalysisConfig) -> bool:
    """The suspect rule of the module doc for a cluster's mean shortcut-area share."""
    share = share or 0.0
    return bool(share >= config.flag_share or
                (share >= config.min_share and share >= config.enrichment * baseline))


def shortcut_kind(regions: dict[str, float | None], areas: dict[str, float]) -> str:
    """The kind where the relevance is densest (share / the kind's mean fraction of the
    members' images: a wide border band holds a large share of any map, a word's strokes a
    large share of a marker cluster's in little area), among the kinds holding at least a
    quarter of the cluster's shortcut-area share (a few stray bright pixels are not a kind)."""
    total = regions.get("shortcut area") or 0.0
    big = [k for k in KINDS if (regions.get(k) or 0.0) >= 0.25 * total] or list(KINDS)
    return max(big, key=lambda k: (regions.get(k) or 0.0) / max(areas.get(k, 0.0), 1e-6))


def _cf_text(cf: dict[str, Any] | None) -> str:
    if not cf:
        return ""
    return (f"; masking it lowers the logit by {cf['logit_drop_hot']:.2f} vs "
            f"{cf['logit_drop_random']:.2f} for random regions of the same size (effect "
            f"{cf['effect']:.2f} [{cf['ci_low']:.2f}, {cf['ci_high']:.2f}], p = {cf['p_value']:.2g}, "
            f"floor {cf.get('floor', 0.0):.2f})")


def _sentence(c: dict[str, Any], n_total: int) -> str:
    def share(r: str) -> float:
        return c["regions"].get(r) or 0.0  # None: no member has positive relevance

    top = max(_NAMED, key=share)
    s = (f"cluster {c['id']} ({c['size']} images, {c['size'] / n_total:.0%}): "
         f"{share('shortcut area'):.0%} of the relevance in the border, corners and "
         f"outside the body (most in the {top}: {share(top):.0%})")
    if c.get("strategy") is not None:
        return s + f"; part of strategy {c['strategy']}"
    return s + _cf_text(c.get("counterfactual"))


def _strategy_sentence(st: dict[str, Any], n_total: int, baseline: dict[str, float]) -> str:
    k = st["kind"]
    ids = ", ".join(str(i) for i in st["clusters"])
    s = (f"strategy {st['id']} (cluster{'s' if len(st['clusters']) > 1 else ''} {ids}; "
         f"{st['size']} images, {st['size'] / n_total:.0%}): {st['regions'].get(k) or 0.0:.0%} of "
         f"the relevance in the {k} (class median {baseline.get(k, 0.0):.0%})")
    return s + _cf_text(st.get("counterfactual"))


def _test(members: np.ndarray, res: SprayResult, positions: np.ndarray, config: AnalysisConfig,
          load_images: Callable[[np.ndarray], Any], model: Any, cls: int, seed: int,
          logit_sd: float, protos: dict[int, np.ndarray], area: np.ndarray | None = None
          ) -> dict[str, Any] | None:
    """The counterfactual test of ``members`` (indices into the population). Each image's hot
    region comes from its own cluster's **share prototype**: the mean of the members' positive
    relevance, each normalised to 1 (``protos``, per cluster; folded like SpRAy's maps,
    unfolded per image), which is where the cluster's evidence lies (SpRAy's signed prototype can be
    all negative when members carry little positive relevance). With ``area`` (the shortcut
    area per population image, bits packed per row) only the prototype inside the image's area counts: a
    strategy's test removes what it is suspected of."""
    cfg = config.counterfactual
    chosen = members
    if len(members) > cfg.max_images:
        rng = np.random.default_rng(cfg.seed + seed)
        chosen = np.sort(rng.choice(members, cfg.max_images, replace=False))
    if len(chosen) < 2:
        return None
    flipped = res.flipped if res.flipped is not None else np.zeros(len(res.labels), bool)
    per = []
    for i in chosen:
        proto = protos[int(res.labels[i])]
        proto = proto[:, ::-1] if flipped[i] else proto
        if area is not None:
            inside = proto * np.unpackbits(area[i])[:proto.size].reshape(proto.shape)
            proto = inside if (inside > 0).any() else proto
        if not (proto > 0).any():
            return None
        per.append(hot_cells(proto, cfg.grid, cfg.hot_share, cfg.max_cells))
    return counterfactual(model, load_images(positions[chosen]), cls, np.stack(per), cfg,
                          logit_sd).to_dict()


def _mean_regions(sh: dict[str, np.ndarray], members: np.ndarray) -> dict[str, float | None]:
    with np.errstate(all="ignore"):
        return {r: (None if np.all(np.isnan(v[members])) else float(np.nanmean(v[members])))
                for r, v in sh.items()}


@dataclass
class _Streamed:
    """Per-image results of the pass over the population's 64-px arrays, block by block."""

    shares: dict[str, np.ndarray]
    mass: np.ndarray  #: positive relevance per image
    kind_area: dict[str, np.ndarray]  #: per image, the fraction of it each kind covers
    area: np.ndarray  #: (P, 512) the shortcut area per image, bits packed


def _regions_pass(arrays: ClassArrays, positions: np.ndarray, t: int, config: AnalysisConfig,
                  lungs: np.ndarray | None) -> _Streamed:
    n = len(positions)
    shares: dict[str, np.ndarray] = {}
    mass, area = np.zeros(n), None
    kind_area = {k: np.zeros(n) for k in KINDS}
    i = 0
    for blk in arrays.blocks(positions):
        j = i + len(blk)
        has = arrays.rows("has_finding", blk, t)
        masks = region_masks(arrays.rows("image64", blk), arrays.rows("finding64", blk, t), has,
                             None if lungs is None else lungs[blk], config.regions)
        maps64 = arrays.rows("maps64", blk, t)
        for r, v in region_shares(maps64, masks, has).items():
            shares.setdefault(r, np.full(n, np.nan))[i:j] = v
        mass[i:j] = np.clip(maps64.astype(np.float64), 0, None).reshape(len(blk), -1).sum(1)
        for k in KINDS:
            kind_area[k][i:j] = np.asarray(masks[k], dtype=np.float64).reshape(len(blk), -1).mean(1)
        packed = np.packbits(np.asarray(masks["shortcut area"]).reshape(len(blk), -1), axis=1)
        if area is None:
            area = np.zeros((n, packed.shape[1]), np.uint8)
        area[i:j] = packed
        i = j
    return _Streamed(shares, mass, kind_area, area)


def _prototypes_pass(arrays: ClassArrays, positions: np.ndarray, t: int, res: SprayResult,
                     evidence: np.ndarray, mass: np.ndarray
                     ) -> tuple[dict[int, np.ndarray], dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Per cluster the mean of its members' positive relevance, each normalised to 1 (no
    evidence: zero), folded like SpRAy's maps; and (image64, maps64) of the typical members."""
    flipped = res.flipped if res.flipped is not None else np.zeros(len(res.labels), bool)
    typical = {int(i) for c in res.typical for i in c}
    sums: dict[int, np.ndarray] = {}
    thumbs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    i = 0
    for blk in arrays.blocks(positions):
        j = i + len(blk)
        maps64 = arrays.rows("maps64", blk, t)
        pos = np.clip(maps64.astype(np.float64), 0, None) / np.where(evidence[i:j], mass[i:j], 1.0)[:, None, None]
        pos[~evidence[i:j]] = 0.0
        pos = np.where(flipped[i:j, None, None], pos[:, :, ::-1], pos)
        for c in np.unique(res.labels[i:j]):
            part = pos[res.labels[i:j] == c].sum(0)
            sums[int(c)] = sums[int(c)] + part if int(c) in sums else part
        wanted = [q for q in range(i, j) if q in typical]
        if wanted:
            img = arrays.rows("image64", blk[np.array(wanted) - i])
            for w, q in enumerate(wanted):
                thumbs[q] = (img[w], np.array(maps64[q - i]))
        i = j
    counts = np.bincount(res.labels, minlength=res.n_clusters)
    return {c: v / counts[c] for c, v in sums.items()}, thumbs


def audit_class(name: str, t: int, data: ClassArrays | dict[str, np.ndarray], labels: np.ndarray,
                meta: pd.DataFrame, keys: list[str], config: AnalysisConfig,
                load_images: Callable[[np.ndarray], Any], model: Any, cls: int,
                lungs: np.ndarray | None = None) -> ClassAudit:
    """Audit class ``name`` (column ``t`` of the store, output ``cls`` of the model).

    ``data`` gives the stored arrays (:mod:`chexplain.audit.arrays`; a dict of arrays in
    memory too): SpRAy's 32-px maps of the population are read at once, the 64-px maps,
    images and finding masks a block at a time."""
    arrays = as_arrays(data)
    logits = arrays.rows("logits", np.arange(arrays.n_images), t).astype(np.float64)
    prob = 1.0 / (1.0 + np.exp(-logits))
    positions, text = select_population(labels[:, t], prob, config)
    if len(positions) < max(3, config.min_images):
        return ClassAudit(name, text, positions, None, {}, note=f"only {len(positions)} images "
                          f"({text}); at least {max(3, config.min_images)} are needed")
    res = spray(arrays.rows("maps32", positions, t), config.spray)
    streamed = _regions_pass(arrays, positions, t, config, lungs)
    mass = streamed.mass
    evidence = mass > config.min_evidence * float(np.median(mass))
    protos, thumbs = _prototypes_pass(arrays, positions, t, res, evidence, mass)
    sh = {r: np.where(evidence, v, np.nan) for r, v in streamed.shares.items()}
    baseline = {r: float(np.nanmedian(v)) if np.isfinite(v).any() else 0.0 for r, v in sh.items()}
    sd = float(np.std(logits, ddof=1)) if len(logits) > 1 else 0.0
    note = res.note or ("" if evidence.any() else
                        "no map has positive relevance for the class: no region shares")
    audit = ClassAudit(name, text, positions, res, sh, baseline=baseline, logit_sd=sd, note=note,
                       thumbs=thumbs)
    lab = labels[positions, t]
    groups: dict[str, list[int]] = {}
    for c in range(res.n_clusters):
        members = np.flatnonzero(res.labels == c)
        regions = _mean_regions(sh, members)
        known = lab[members][~np.isnan(lab[members])]
        suspect = bool(evidence[members].mean() >= 0.5) and \
            is_suspect(regions["shortcut area"], baseline["shortcut area"], config)
        rec = {"id": c, "size": int(len(members)), "fraction": len(members) / len(positions),
               "members": [keys[int(positions[i])] for i in members],
               "typical": [keys[int(positions[i])] for i in res.typical[c]],
               "regions": regions, "positive_rate": float(known.mean()) if len(known) else None,
               "mean_probability": float(prob[positions[members]].mean()),
               "evidence": float(evidence[members].mean()),
               "suspect": suspect, "kind": None if not suspect else shortcut_kind(
                   regions, {k: float(np.mean(streamed.kind_area[k][members])) for k in KINDS}),
               "strategy": None, "counterfactual": None, "flagged": False}
        if suspect:
            groups.setdefault(rec["kind"] if config.strategies else f"{rec['kind']}#{c}", []).append(c)
        elif config.counterfactual_on == "all":
            rec["counterfactual"] = _test(members, res, positions, config, load_images, model,
                                          cls, c, sd, protos)
        audit.clusters.append(rec)
    for s_id, (key, ids) in enumerate(sorted(groups.items(), key=lambda kv: kv[1][0])):
        members = np.flatnonzero(np.isin(res.labels, ids))
        cf = _test(members, res, positions, config, load_images, model, cls, 100 + s_id, sd,
                   protos, streamed.area)
        st = {"id": s_id, "kind": key.split("#")[0], "clusters": ids, "size": int(len(members)),
              "fraction": len(members) / len(positions),
              "members": [keys[int(positions[i])] for i in members],
              "regions": _mean_regions(sh, members), "counterfactual": cf,
              "flagged": bool(cf and cf["used"])}
        st["sentence"] = _strategy_sentence(st, len(positions), baseline)
        audit.strategies.append(st)
        for c in ids:
            audit.clusters[c].update(strategy=s_id, counterfactual=cf, flagged=st["flagged"])
    for rec in audit.clusters:
        rec["sentence"] = _sentence(rec, len(positions))
    sub = meta.iloc[positions].reset_index(drop=True) if len(meta.columns) else pd.DataFrame()
    factors = {"label": pd.Series(lab).map({1.0: "positive", 0.0: "negative"})}
    for col in sub.columns:
        factors[col] = age_bins(sub[col]) if col == "Age" else sub[col]
    for fname, values in factors.items():
        a = association(res.labels, values)
        if a is not None:
            audit.association[fname] = a
    return audit
