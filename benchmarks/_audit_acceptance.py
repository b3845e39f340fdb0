"""The acceptance numbers of ``benchmarks/audit_phantom.py``: audit both models and score the
flagged clusters against the phantom's marker masks (read here only, never by the audit)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from chexplain.audit import AnalysisConfig, AuditConfig, SprayConfig, run_audit
from chexplain.data.phantom import mask_file


def marker_images(test_csv: Path) -> dict[str, bool]:
    frame = pd.read_csv(test_csv)
    root = test_csv.parent.parent
    return {p: mask_file(root / p, "marker").is_file() for p in frame["Path"]}


def score(audit: dict[str, Any], observation: str, marker: dict[str, bool]) -> dict[str, Any]:
    rec = audit["classes"][observation]
    members = [m for c in rec["clusters"] for m in c["members"]]
    n_marker = sum(marker[m] for m in members)
    clusters = []
    for c in rec["clusters"]:
        hit = sum(marker[m] for m in c["members"])
        cf = c["counterfactual"] or {}
        clusters.append({"id": c["id"], "size": c["size"], "suspect": c["suspect"],
                         "flagged": c["flagged"], "purity": hit / c["size"],
                         "recall": hit / n_marker if n_marker else None,
                         "shortcut_share": c["regions"]["shortcut area"],
                         "effect": cf.get("effect"), "ci": [cf.get("ci_low"), cf.get("ci_high")],
                         "drop_hot": cf.get("logit_drop_hot"), "drop_random": cf.get("logit_drop_random"),
                         "p_value": cf.get("p_value")})
    return {"population": rec["population"], "images": len(members), "marker_images": n_marker,
            "n_clusters": rec.get("n_clusters"), "eigenvalues": [round(x, 4) for x in rec.get("eigenvalues", [])[:10]],
            "clusters": clusters}


def shortcut_reliance(out: Path, observation: str, marker: dict[str, bool]) -> dict[str, float]:
    """Mean logit of the class on negatives with and without the marker (the shortcut's pull)."""
    index = pd.read_csv(out / "store" / "index.csv")
    index = index[index["class"] == observation]
    has = index["image"].map(marker).to_numpy(bool)
    neg = index["label"].to_numpy() == 0
    pos = index["label"].to_numpy() == 1
    return {"neg_with_marker": float(index["logit"][neg & has].mean()),
            "neg_without_marker": float(index["logit"][neg & ~has].mean()),
            "pos_with_marker": float(index["logit"][pos & has].mean()),
            "pos_without_marker": float(index["logit"][pos & ~has].mean())}


def positives_csv(test_csv: Path, observation: str) -> Path:
    """The test CSV's rows positive for ``observation`` (what the default population clusters):
    explaining only them gives the same clusters at a third of the cost."""
    frame = pd.read_csv(test_csv)
    path = test_csv.with_name("positives.csv")
    frame[frame[observation] == 1].to_csv(path, index=False)
    return path


def acceptance(ckpts: dict[str, Path], test_csv: Path, out: Path, args) -> dict[str, Any]:
    if args.positives_only:
        test_csv = positives_csv(test_csv, args.observation)
    marker = marker_images(test_csv)
    result: dict[str, Any] = {"observation": args.observation, "test_images": len(marker),
                              "test_marker_images": int(sum(marker.values()))}
    for name, ckpt in ckpts.items():
        folder = out / f"audit-{name}{'-positives' if args.positives_only else ''}"
        cfg = AuditConfig(checkpoint=str(ckpt), out=str(folder), csv=str(test_csv),
                          classes=[args.observation], batch_size=16, resume=True,
                          analysis=AnalysisConfig(population=args.population,
                                                  spray=SprayConfig(mirror=args.mirror)))
        t0 = time.perf_counter()
        audit = run_audit(cfg, progress=False)
        s = score(audit, args.observation, marker)
        s["seconds"] = round(time.perf_counter() - t0, 1)
        s["logits"] = shortcut_reliance(folder, args.observation, marker)
        flagged = [c for c in s["clusters"] if c["flagged"]]
        best = max(flagged, key=lambda c: (c["purity"] >= 0.8) + (c["recall"] or 0), default=None)
        s["passes"] = (bool(best and best["purity"] >= 0.8 and (best["recall"] or 0) >= 0.7
                            and best["p_value"] < 0.01) if name == "shortcut" else not flagged)
        result[name] = s
    print("| model | images | marker | clusters | flagged | purity | recall | Δ hot | Δ random | effect [95 % CI] | p |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ckpts:
        s = result[name]
        for c in s["clusters"]:
            pv = "–" if c["p_value"] is None else f"{c['p_value']:.2g}"
            eff = "–" if c["effect"] is None else f"{c['effect']:.2f} [{c['ci'][0]:.2f}, {c['ci'][1]:.2f}]"
            print(f"| {name} | {s['images']} | {s['marker_images']} | {c['id']}/{s['n_clusters']} "
                  f"({c['size']}) | {'yes' if c['flagged'] else 'no'} | {c['purity']:.2f} | "
                  f"{'–' if c['recall'] is None else format(c['recall'], '.2f')} | {c['drop_hot'] if c['drop_hot'] is None else round(c['drop_hot'], 2)} | "
                  f"{c['drop_random'] if c['drop_random'] is None else round(c['drop_random'], 2)} | {eff} | "
                  f"{pv} |")
    return result
