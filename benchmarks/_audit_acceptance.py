"""The acceptance numbers of ``benchmarks/audit_phantom.py``: audit both models and score the
clusters and strategies against the phantom's shortcut masks (read here only, never by the
audit)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from chexplain.audit import AnalysisConfig, AuditConfig, SprayConfig, run_audit
from chexplain.data.phantom import mask_file
from chexplain.data.shortcuts import SHORTCUT_MASKS


def shortcut_images(test_csv: Path, kind: str) -> dict[str, bool]:
    frame = pd.read_csv(test_csv)
    root = test_csv.parent.parent
    return {p: mask_file(root / p, SHORTCUT_MASKS[kind]).is_file() for p in frame["Path"]}


#: verdicts of a report that names them (instead of, or beside, ``flagged``) that flag a group
FLAGGING_VERDICTS = ("flagged",)


def is_flagged(group: dict[str, Any]) -> bool:
    """Whether the audit flags a cluster or strategy: its ``flagged``, else its ``verdict``."""
    if "flagged" in group:
        return bool(group["flagged"])
    verdict = group.get("verdict")
    return isinstance(verdict, str) and verdict.strip().lower() in FLAGGING_VERDICTS


def _score(group: dict[str, Any], marker: dict[str, bool], n_marker: int) -> dict[str, Any]:
    hit = sum(marker[m] for m in group["members"])
    cf = group.get("counterfactual") or {}
    return {"id": group["id"], "size": group["size"], "flagged": is_flagged(group),
            "verdict": group.get("verdict"),
            "purity": hit / group["size"], "recall": hit / n_marker if n_marker else None,
            "effect": cf.get("effect"), "ci": [cf.get("ci_low"), cf.get("ci_high")],
            "drop_hot": cf.get("logit_drop_hot"), "drop_control": cf.get("logit_drop_control"),
            "floor": cf.get("floor"), "p_value": cf.get("p_value")}


def score(audit: dict[str, Any], observation: str, marker: dict[str, bool]) -> dict[str, Any]:
    rec = audit["classes"][observation]
    members = [m for c in rec["clusters"] for m in c["members"]]
    n_marker = sum(marker[m] for m in members)
    clusters = []
    for c in rec["clusters"]:
        clusters.append(_score(c, marker, n_marker) | {
            "suspect": c.get("suspect"), "strategy": c.get("strategy"), "kind": c.get("kind"),
            "shortcut_share": (c.get("regions") or {}).get("shortcut area")})
    strategies = [_score(s, marker, n_marker) | {"clusters": s["clusters"], "kind": s.get("kind")}
                  for s in rec.get("strategies", [])]
    return {"population": rec["population"], "images": len(members), "marker_images": n_marker,
            "n_clusters": rec.get("n_clusters"), "logit_sd": rec.get("logit_sd"),
            "baseline_shortcut_share": (rec.get("baseline") or {}).get("shortcut area"),
            "eigenvalues": [round(x, 4) for x in rec.get("eigenvalues", [])[:10]],
            "clusters": clusters, "strategies": strategies}


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


def _passes(name: str, s: dict[str, Any]) -> bool:
    flagged = [g for g in s["strategies"] if g["flagged"]]
    if name != "shortcut":
        return not flagged
    return any(g["purity"] >= 0.8 and (g["recall"] or 0) >= 0.7 and g["p_value"] < 0.01
               for g in flagged)


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def _row(name: str, s: dict[str, Any], what: str, g: dict[str, Any]) -> str:
    eff = "–" if g["effect"] is None else f"{g['effect']:.2f} [{g['ci'][0]:.2f}, {g['ci'][1]:.2f}]"
    return (f"| {name} | {what} | {g['size']} | {'yes' if g['flagged'] else 'no'} | "
            f"{g['purity']:.2f} | {_fmt(g['recall'])} | {_fmt(g['drop_hot'])} | "
            f"{_fmt(g['drop_random'])} | {eff} | {_fmt(g['floor'])} | {_fmt(g['p_value'], '.2g')} |")


def acceptance(ckpts: dict[str, Path], test_csv: Path, out: Path, args) -> dict[str, Any]:
    if args.positives_only:
        test_csv = positives_csv(test_csv, args.observation)
    marker = shortcut_images(test_csv, args.kind)
    result: dict[str, Any] = {"observation": args.observation, "kind": args.kind,
                              "test_images": len(marker),
                              "test_marker_images": int(sum(marker.values()))}
    for name, ckpt in ckpts.items():
        base = out / f"audit-{name}{'-positives' if args.positives_only else ''}"
        folder = base.with_name(base.name + args.tag) if args.tag else base
        if folder != base and (base / "store").is_dir() and not (folder / "store").is_dir():
            shutil.copytree(base / "store", folder / "store")  # a variant of the analysis only
            (folder / "audit.json").unlink(missing_ok=True)
        cfg = AuditConfig(checkpoint=str(ckpt), out=str(folder), csv=str(test_csv),
                          classes=[args.observation], batch_size=16, resume=True,
                          analysis=AnalysisConfig(population=args.population,
                                                  strategies=not args.no_strategies,
                                                  spray=SprayConfig(mirror=args.mirror)))
        t0 = time.perf_counter()
        audit = run_audit(cfg, progress=False)
        s = score(audit, args.observation, marker)
        s["seconds"] = round(time.perf_counter() - t0, 1)
        s["logits"] = shortcut_reliance(folder, args.observation, marker)
        s["passes"] = _passes(name, s)
        result[name] = s
    print("| model | cluster / strategy | images | flagged | purity | recall | Δ hot | Δ random "
          "| effect [95 % CI] | floor | p |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ckpts:
        s = result[name]
        for c in s["clusters"]:
            print(_row(name, s, f"cluster {c['id']}/{s['n_clusters']}"
                       f"{'' if c['strategy'] is None else ' → strategy ' + str(c['strategy'])}", c))
        for g in s["strategies"]:
            print(_row(name, s, f"strategy {g['id']} ({g['kind']}: clusters "
                       f"{', '.join(map(str, g['clusters']))})", g))
    return result
