"""The held-out validation suite of ``chexplain audit`` (``benchmarks/audit_phantom.py --suite``).

Per shortcut kind: a training set (seed 0) with the shortcut on ``p⁺`` = 0.9 of the
observation's positives and ``p⁻`` = 0.1 of its negatives, a test set (``--test-seed``) with
it on half of all images independently of the label, a model trained on it; one clean model
trained on the same images without any shortcut. Both models are audited on each kind's test
set and scored against the drawn pixels (read here only). Kinds: the phantom's own
(``text``, ``laterality``, ``drain``, ``site``; :class:`chexplain.data.phantom.Confounder`)
and the held-out ones of ``_shortcut_drawers`` (``dim``, ``dim-lungs``, ``texture``, ``anywhere``).

Layout of ``--out``: ``data/<set>/`` (phantom folders), ``model-<kind>/``, ``model-clean/``,
``eval/<kind>/<model>/`` (predictions on the test set), ``audit/<kind>/<model>/`` (the audit),
``suite.json`` and ``suite.md``; a kind trained longer (``--kind-epochs texture=8``) has its
own ``model-<kind>-e8/``, ``eval/<kind>/shortcut-e8/`` and ``audit/<kind>/shortcut-e8/``. Everything present is reused; ``--reaudit`` recomputes the
audits' analysis (the stored explanations stay), ``--reexplain`` the explanations too.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import _shortcut_drawers as drawers
from chexplain.data.phantom import Confounder, clear_phantom, mask_file, write_phantom
from chexplain.data.shortcuts import SHORTCUT_MASKS

KINDS = ("text", "laterality", "drain", "site") + drawers.KINDS
#: the observation each kind is correlated with (a drain stands in for a pneumothorax)
OBSERVATION = {"drain": "Pneumothorax"}
TRAIN_P, TEST_P = (0.9, 0.1), (0.5, 0.5)


def observation(kind: str, default: str) -> str:
    return OBSERVATION.get(kind, default)


def _write(folder: Path, n: int, seed: int, split: str, size: int,
           confounder: Confounder | None) -> Path:
    clear_phantom(folder)
    t0 = time.perf_counter()
    csv = write_phantom(folder, n, size, seed=seed, confounder=confounder, progress=False,
                        split=split)
    print(f"wrote {n} phantom images ({folder.name}) in {time.perf_counter() - t0:.0f} s", flush=True)
    return csv


def data_set(out: Path, kind: str | None, test: bool, args) -> Path:
    """The CSV of one set (written when missing): the clean training set (``kind`` None), or
    a kind's training or test set."""
    split = "test" if test else "train"
    n, seed = (args.n_test, args.test_seed) if test else (args.n, 0)
    p = TEST_P if test else TRAIN_P
    folder = out / "data" / (f"{kind}{data_tag(kind, args)}-{split}" if kind else "clean")
    csv = folder / f"{split}.csv"
    if kind in drawers.KINDS:
        if not drawers.shortcut_file(csv).is_file():
            csv = _write(folder, n, seed, split, args.size, None)
            t0 = time.perf_counter()
            drawers.plant(csv, kind, observation(kind, args.observation), *p, seed,
                          drawer_strength(args).get(kind))
            print(f"drew {kind} on {folder.name} in {time.perf_counter() - t0:.0f} s", flush=True)
        return csv
    if not csv.is_file():
        conf = Confounder(observation(kind, args.observation), *p, kind=kind) if kind else None
        csv = _write(folder, n, seed, split, args.size, conf)
    return csv


def marker_images(test_csv: Path, kind: str) -> dict[str, bool]:
    """Path → whether the kind's shortcut was drawn (from the masks beside the data)."""
    if kind in drawers.KINDS:
        return {p: m is not None for p, m in drawers.read_shortcut(test_csv).items()}
    frame = pd.read_csv(test_csv)
    root = test_csv.parent.parent
    return {p: mask_file(root / p, SHORTCUT_MASKS[kind]).is_file() for p in frame["Path"]}


def strength(ckpt: Path, test_csv: Path, folder: Path, obs: str, marker: dict[str, bool]) -> dict[str, Any]:
    """How much the model uses the shortcut on the test set (where it is independent of the
    label): mean predicted probability of ``obs`` with minus without the shortcut (overall
    and within each label), and the finding's AUROC."""
    from chexplain.evaluate.auroc import evaluate_checkpoint

    if not (folder / "predictions.csv").is_file():
        evaluate_checkpoint(ckpt, test_csv, folder, device="cpu", progress=False)
    pred = pd.read_csv(folder / "predictions.csv")
    auroc = json.loads((folder / "auroc.json").read_text())["auroc"].get(obs)
    label = pd.read_csv(test_csv).set_index("Path")[obs].reindex(pred["Path"]).to_numpy() == 1
    has = pred["Path"].map(marker).to_numpy(bool)
    prob = pred[obs].to_numpy(float)

    def gap(keep: np.ndarray) -> float | None:
        a, b = prob[keep & has], prob[keep & ~has]
        return float(a.mean() - b.mean()) if len(a) and len(b) else None

    every = np.ones(len(prob), dtype=bool)
    return {"prob_gap": gap(every), "prob_gap_positives": gap(label),
            "prob_gap_negatives": gap(~label), "auroc": auroc}


def kind_epochs(args) -> dict[str, int]:
    """``--kind-epochs texture=8,dim=5`` as {kind: epochs}."""
    out = {}
    for item in filter(None, (s.strip() for s in (args.kind_epochs or "").split(","))):
        kind, _, n = item.partition("=")
        if kind not in KINDS or not n.isdigit() or int(n) < 1:
            raise SystemExit(f"--kind-epochs {item!r}: use KIND=EPOCHS with a kind of {', '.join(KINDS)}")
        out[kind] = int(n)
    return out


def drawer_strength(args) -> dict[str, float]:
    """``--drawer-strength texture=0.2,anywhere=0.8`` as {kind: strength} (held-out kinds)."""
    out = {}
    for item in filter(None, (s.strip() for s in (args.drawer_strength or "").split(","))):
        kind, _, v = item.partition("=")
        try:
            out[kind] = float(v)
        except ValueError:
            kind = ""
        if kind not in drawers.KINDS or not 0 < out[kind] <= 1:
            raise SystemExit(f"--drawer-strength {item!r}: use KIND=VALUE in (0, 1] with a kind "
                             f"of {', '.join(drawers.KINDS)}")
    return out


def data_tag(kind: str, args) -> str:
    """The data's folder suffix: ``-s<V>`` for a held-out kind drawn at another strength."""
    v = drawer_strength(args).get(kind)
    return "" if v is None else f"-s{v:g}"


def variant(kind: str, args) -> str:
    """The shortcut model's folder suffix: the data's, then ``-e<N>`` when the kind trains for
    other than ``--epochs`` epochs."""
    n = kind_epochs(args).get(kind, args.epochs)
    return data_tag(kind, args) + ("" if n == args.epochs else f"-e{n}")


def clean_tag(args) -> str:
    """The clean model's folder suffix: ``-e<N>`` when it trains for other than ``--epochs``."""
    n = args.clean_epochs or args.epochs
    return "" if n == args.epochs else f"-e{n}"


def _train(csv: Path, run: Path, args, epochs: int | None = None) -> tuple[Path, float | None]:
    from chexplain.studies.chexpert.train import ChexpertTrainConfig, train_chexpert

    seconds = None
    if not (run / "summary.json").is_file():
        cfg = ChexpertTrainConfig(csv=str(csv), out=str(run), arch=args.arch, weights="none",
                                  image_size=args.size, epochs=epochs or args.epochs,
                                  batch_size=args.batch_size, lr=args.lr, device="cpu",
                                  workers=0, patience=0, seed=0, checkpoint_every=20)
        t0 = time.perf_counter()
        train_chexpert(cfg, resume=True, progress=False)
        seconds = round(time.perf_counter() - t0, 1)
        (run / "suite_seconds.txt").write_text(f"{seconds}\n")
        print(f"trained {run.name} in {seconds:.0f} s", flush=True)
    elif (run / "suite_seconds.txt").is_file():
        seconds = float((run / "suite_seconds.txt").read_text())
    return run / "best.pt", seconds


def _audit(ckpt: Path, test_csv: Path, folder: Path, obs: str, args) -> tuple[dict[str, Any], float | None]:
    from chexplain.audit import AnalysisConfig, AuditConfig, run_audit

    result = folder / "audit.json"
    if args.reexplain:
        shutil.rmtree(folder / "store", ignore_errors=True)
    if result.is_file() and not (args.reaudit or args.reexplain):
        seconds = folder / "suite_seconds.txt"
        return json.loads(result.read_text()), float(seconds.read_text()) if seconds.is_file() else None
    cfg = AuditConfig(checkpoint=str(ckpt), out=str(folder), csv=str(test_csv), classes=[obs],
                      batch_size=16, resume=True,
                      analysis=AnalysisConfig(population=args.population))
    t0 = time.perf_counter()
    audit = run_audit(cfg, progress=False, say=lambda *a, **k: None)
    seconds = round(time.perf_counter() - t0, 1)
    (folder / "suite_seconds.txt").write_text(f"{seconds}\n")
    print(f"audited {folder.parent.name}/{folder.name} in {seconds:.0f} s", flush=True)
    return audit, seconds


def run_kind(out: Path, kind: str, clean_ckpt: Path, args) -> dict[str, Any]:
    """Data, shortcut model, strengths and audits of one kind."""
    from _audit_acceptance import positives_csv, score

    obs = observation(kind, args.observation)
    train_csv, test_csv = data_set(out, kind, False, args), data_set(out, kind, True, args)
    tag = variant(kind, args)
    epochs = kind_epochs(args).get(kind, args.epochs)
    ckpt, train_s = _train(train_csv, out / f"model-{kind}{tag}", args, epochs)
    marker = marker_images(test_csv, kind)
    audited = positives_csv(test_csv, obs) if args.positives_only else test_csv
    audited_marker = {p: marker[p] for p in pd.read_csv(audited)["Path"]}
    rec: dict[str, Any] = {"kind": kind, "observation": obs, "test_images": len(marker),
                           "test_marker_images": int(sum(marker.values())),
                           "audited_images": len(audited_marker),
                           "audited_marker_images": int(sum(audited_marker.values())),
                           "epochs": epochs, "clean_epochs": args.clean_epochs or args.epochs,
                           "drawer_strength": drawer_strength(args).get(kind),
                           "train_seconds": train_s}
    for name, model in (("shortcut", ckpt), ("clean", clean_ckpt)):
        folder = f"{name}{tag}" if name == "shortcut" else name + data_tag(kind, args) + clean_tag(args)
        s = strength(model, test_csv, out / "eval" / kind / folder, obs, marker)
        if args.train_only:
            rec[name] = {"strength": s}
            continue
        audit, seconds = _audit(model, audited, out / "audit" / kind / folder, obs, args)
        rec[name] = score(audit, obs, audited_marker) | {"strength": s, "audit_seconds": seconds}
    return rec


#: a model "learned" the shortcut when it lifts the predicted probability by this much
LEARNED_GAP = 0.1


def verdict(rec: dict[str, Any]) -> dict[str, Any]:
    """The acceptance of one kind: a flagged group of the shortcut model with purity ≥ 0.8 and
    recall ≥ 0.7; nothing flagged on the clean model. A shortcut the model did not learn is
    reported as such, not as a miss of the detector."""
    sc, cl = rec.get("shortcut", {}), rec.get("clean", {})
    gap = (sc.get("strength") or {}).get("prob_gap")
    flagged = [g for g in sc.get("strategies", []) if g["flagged"]]
    best = max(flagged, key=lambda g: (g["purity"] >= 0.8 and (g["recall"] or 0) >= 0.7,
                                       (g["recall"] or 0) * g["purity"]), default=None)
    found = bool(best and best["purity"] >= 0.8 and (best["recall"] or 0) >= 0.7)
    false_alarms = [g for g in cl.get("strategies", []) if g["flagged"]]
    learned = gap is not None and gap >= LEARNED_GAP
    return {"learned": learned, "flagged": len(flagged), "best": best, "found": found,
            "clean_flagged": len(false_alarms),
            "clean_effects": [g["effect"] for g in false_alarms],
            "passes": found and not false_alarms if "strategies" in sc else None,
            "outcome": ("not audited" if "strategies" not in sc else "pass" if found and not false_alarms
                        else "shortcut not learned" if not learned and not found
                        else "miss" if not found else "false alarm")}


def _f(v: Any, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def markdown(records: list[dict[str, Any]]) -> str:
    head = ("| kind | observation | marked / audited | shortcut strength: Δ prob (AUROC) | clean Δ prob "
            "| flagged groups | best group: size, purity, recall | effect [95 % CI] vs floor | p "
            "| clean false alarms | best SpRAy cluster: size, purity, recall, suspect "
            "| outcome | train s | audit s (shortcut / clean) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in records:
        kind = r["kind"] + ("" if r.get("drawer_strength") is None else f" at {r['drawer_strength']:g}") \
            + ("" if r.get("epochs") is None else f" ({r['epochs']} ep.")
        kind += "" if r.get("clean_epochs") in (None, r.get("epochs")) else f", clean {r['clean_epochs']}"
        kind += "" if r.get("epochs") is None else ")"
        v = r["verdict"]
        sc, cl = r.get("shortcut", {}), r.get("clean", {})
        s, c = sc.get("strength", {}), cl.get("strength", {})
        b = v["best"]
        group = "–" if b is None else f"{b['size']}, {b['purity']:.2f}, {_f(b['recall'])}"
        eff = "–" if b is None or b["effect"] is None else (
            f"{b['effect']:.2f} [{_f(b['ci'][0])}, {_f(b['ci'][1])}] vs {_f(b['floor'])}")
        clusters = sc.get("clusters") or []
        c0 = max(clusters, key=lambda c: (c["recall"] or 0) * c["purity"], default=None)
        cluster = "–" if c0 is None else (f"{c0['size']}, {c0['purity']:.2f}, {_f(c0['recall'])}, "
                                          f"{c0.get('kind') or 'no' if c0.get('suspect') else 'no'}")
        alarms = str(v["clean_flagged"]) + ("" if not v["clean_effects"] else
                                            " (" + ", ".join(_f(e) for e in v["clean_effects"]) + ")")
        lines.append(
            f"| {kind} | {r['observation']} | {r.get('audited_marker_images')} / {r.get('audited_images')} "
            f"| {_f(s.get('prob_gap'))} ({_f(s.get('auroc'))}) | {_f(c.get('prob_gap'))} "
            f"| {v['flagged']} | {group} | {eff} | {_f(None if b is None else b['p_value'], '.2g')} "
            f"| {alarms} | {cluster} | {v['outcome']} | {_f(r.get('train_seconds'), '.0f')} "
            f"| {_f(sc.get('audit_seconds'), '.0f')} / {_f(cl.get('audit_seconds'), '.0f')} |")
    return "\n".join(lines) + "\n"


def _merge(earlier: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of ``suite.json`` with ``new`` replacing the one of its kind and epochs,
    in :data:`KINDS` order (shorter training first)."""
    def key(r: dict[str, Any]) -> tuple:
        return (r["kind"], r.get("drawer_strength") or 0.0, r.get("epochs") or 0,
                r.get("clean_epochs") or r.get("epochs") or 0)

    keep = [r for r in earlier if key(r) != key(new)] + [new]
    return sorted(keep, key=lambda r: (KINDS.index(r["kind"]),) + key(r)[1:])


def run_suite(args) -> dict[str, Any]:
    """Every kind of ``--kinds``; ``suite.json`` and ``suite.md`` keep the records of earlier
    runs in the same ``--out`` (other kinds or epochs) and replace those rerun."""
    from chexplain.io import write_json, write_text

    out = Path(args.out)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise SystemExit(f"unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
    kind_epochs(args), drawer_strength(args)  # refuse bad options before any work
    t0 = time.perf_counter()
    clean_ckpt, clean_s = _train(data_set(out, None, False, args), out / f"model-clean{clean_tag(args)}",
                                 args, args.clean_epochs or args.epochs)
    earlier = out / "suite.json"
    records = []
    if earlier.is_file():
        before = json.loads(earlier.read_text())
        records = [{"epochs": before["config"]["epochs"],
                    "clean_epochs": before["config"]["epochs"]} | r for r in before["kinds"]]
    for kind in kinds:
        rec = run_kind(out, kind, clean_ckpt, args)
        rec["verdict"] = verdict(rec)
        records = _merge(records, rec)
        result = {"config": {k: v for k, v in vars(args).items()}, "clean_train_seconds": clean_s,
                  "kinds": records, "seconds": round(time.perf_counter() - t0, 1)}
        write_json(out / "suite.json", result)
        write_text(out / "suite.md", markdown(records))
        print(markdown([rec]).splitlines()[-1], flush=True)
    print(markdown(records))
    return result
