"""One class of an audit: its population, SpRAy, region shares, associations, suspects and
their counterfactual test, and the sentence that explains a flagged cluster.

A cluster is a **suspect** when its members put on average at least ``flag_share`` of their
positive relevance into the shortcut area (border, corners, outside the body); it is
**flagged** when, in addition, the counterfactual test shows the model uses that region
(:mod:`chexplain.audit.counterfactual`). Only the relevance, the images and the labels are
read: nothing about where a shortcut was planted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .counterfactual import CounterfactualConfig, counterfactual, hot_cells
from .regions import CORNERS, RegionConfig, region_masks, region_shares
from .spray import SprayConfig, SprayResult, spray

POPULATIONS = ("auto", "positive", "predicted", "all")
_NAMED = ("border",) + CORNERS + ("outside body",)


@dataclass(frozen=True)
class AnalysisConfig:
    population: str = "auto"  #: auto: labelled positives if ≥ min_images, else predicted, else all
    min_images: int = 10
    flag_share: float = 0.3
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
    association: dict[str, Any] = field(default_factory=dict)
    note: str = ""


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


def _sentence(c: dict[str, Any], n_total: int) -> str:
    def share(r: str) -> float:
        return c["regions"].get(r) or 0.0  # None: no member has positive relevance

    top = max(_NAMED, key=share)
    s = (f"cluster {c['id']} ({c['size']} images, {c['size'] / n_total:.0%}): "
         f"{share('shortcut area'):.0%} of the relevance in the border, corners and "
         f"outside the body (most in the {top}: {share(top):.0%})")
    cf = c.get("counterfactual")
    if cf:
        s += (f"; masking it lowers the logit by {cf['logit_drop_hot']:.2f} vs "
              f"{cf['logit_drop_random']:.2f} for random regions of the same size (effect "
              f"{cf['effect']:.2f} [{cf['ci_low']:.2f}, {cf['ci_high']:.2f}], p = {cf['p_value']:.2g})")
    return s


def audit_class(name: str, t: int, data: dict[str, np.ndarray], labels: np.ndarray,
                meta: pd.DataFrame, keys: list[str], config: AnalysisConfig,
                load_images: Callable[[np.ndarray], Any], model: Any, cls: int,
                lungs: np.ndarray | None = None) -> ClassAudit:
    """Audit class ``name`` (column ``t`` of the store, output ``cls`` of the model)."""
    prob = 1.0 / (1.0 + np.exp(-data["logits"][:, t].astype(np.float64)))
    positions, text = select_population(labels[:, t], prob, config)
    if len(positions) < max(3, config.min_images):
        return ClassAudit(name, text, positions, None, {}, note=f"only {len(positions)} images "
                          f"({text}); at least {max(3, config.min_images)} are needed")
    res = spray(data["maps32"][positions, t], config.spray)
    masks = region_masks(data["image64"][positions], data["finding64"][positions, t],
                         data["has_finding"][positions, t],
                         None if lungs is None else lungs[positions], config.regions)
    sh = region_shares(data["maps64"][positions, t], masks, data["has_finding"][positions, t])
    audit = ClassAudit(name, text, positions, res, sh)
    lab = labels[positions, t]
    for c in range(res.n_clusters):
        members = np.flatnonzero(res.labels == c)
        with np.errstate(all="ignore"):
            regions = {r: (None if np.all(np.isnan(v[members])) else float(np.nanmean(v[members])))
                       for r, v in sh.items()}
        known = lab[members][~np.isnan(lab[members])]
        rec = {"id": c, "size": int(len(members)), "fraction": len(members) / len(positions),
               "members": [keys[int(positions[i])] for i in members],
               "typical": [keys[int(positions[i])] for i in res.typical[c]],
               "regions": regions, "positive_rate": float(known.mean()) if len(known) else None,
               "mean_probability": float(prob[positions[members]].mean()),
               "suspect": bool((regions["shortcut area"] or 0.0) >= config.flag_share),
               "counterfactual": None, "flagged": False}
        if rec["suspect"] or config.counterfactual_on == "all":
            chosen = members
            if len(members) > config.counterfactual.max_images:
                rng = np.random.default_rng(config.counterfactual.seed + c)
                chosen = np.sort(rng.choice(members, config.counterfactual.max_images, replace=False))
            if len(chosen) >= 2 and (np.asarray(res.prototypes[c]) > 0).any():
                hot = hot_cells(np.asarray(res.prototypes[c]), config.counterfactual.grid,
                                config.counterfactual.hot_share, config.counterfactual.max_cells)
                per = np.stack([hot[:, ::-1] if res.flipped[i] else hot for i in chosen])
                cf = counterfactual(model, load_images(positions[chosen]), cls, per,
                                    config.counterfactual)
                rec["counterfactual"] = cf.to_dict()
                rec["flagged"] = bool(rec["suspect"] and cf.used)
        rec["sentence"] = _sentence(rec, len(positions))
        audit.clusters.append(rec)
    sub = meta.iloc[positions].reset_index(drop=True) if len(meta.columns) else pd.DataFrame()
    factors = {"label": pd.Series(lab).map({1.0: "positive", 0.0: "negative"})}
    for col in sub.columns:
        factors[col] = age_bins(sub[col]) if col == "Age" else sub[col]
    for fname, values in factors.items():
        a = association(res.labels, values)
        if a is not None:
            audit.association[fname] = a
    return audit
