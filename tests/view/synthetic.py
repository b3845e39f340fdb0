"""An audit folder in the audit's on-disk format (:mod:`chexplain.audit.store`,
:mod:`chexplain.audit.report`) written directly, of any size: ``store/store.json``, the
shards (through :class:`~chexplain.audit.store.ShardStore`), ``store/index.csv``,
``members.csv`` and ``audit.json``. The maps are small (``map_side``), the images smooth
(they deflate fast); the embedding is a few Gaussian blobs, one per cluster."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from chexplain.audit.store import ShardPlan, ShardStore


def write_synthetic_audit(out: Path, n: int, classes: Sequence[str] = ("Pleural Effusion",),
                          clusters: int = 4, shard_size: int = 256, map_side: int = 8,
                          image_side: int = 64, seed: int = 0, key: str = "img{:06d}.png",
                          sites: Sequence[str] = ("A", "B")) -> Path:
    """Write the audit of ``n`` images under ``out``; returns ``out``."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    store = ShardStore(out / "store")
    plan = ShardPlan(n, shard_size)
    T = len(classes)
    store.open({"classes": list(classes), "method": "epsilon-plus-flat", "synthetic": True},
               plan, resume=False)
    yy, xx = np.mgrid[0:image_side, 0:image_side] / image_side
    base = (0.3 + 0.4 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.08)).astype(np.float32)
    label = rng.integers(0, 2, size=(n, T)).astype(float)
    logits = rng.normal(size=(n, T)).astype(np.float32) + 2 * (label.astype(np.float32) - 0.5)
    cluster = rng.integers(0, clusters, size=(n, T))
    for k in range(plan.n_shards):
        pos = np.array(plan.positions(k))
        m = len(pos)
        maps = np.zeros((m, T, map_side, map_side), np.float32)
        for t in range(T):  # each cluster's evidence in its own corner
            c = cluster[pos, t]
            maps[np.arange(m), t, (c // 2) * (map_side - 1), (c % 2) * (map_side - 1)] = 1.0
        maps += rng.normal(scale=0.05, size=maps.shape).astype(np.float32)
        has = np.zeros((m, T), bool)
        has[:, 0] = label[pos, 0] == 1
        finding = np.zeros((m, T, image_side, image_side), bool)
        finding[has, image_side // 3:image_side // 2, image_side // 3:image_side // 2] = True
        store.write_shard(k, {"positions": pos, "logits": logits[pos],
                              "maps32": maps[:, :, ::2, ::2], "maps64": maps,
                              "image64": np.broadcast_to(base, (m, image_side, image_side)) * 1.0,
                              "finding64": finding, "has_finding": has})
    keys = [key.format(i) for i in range(n)]
    ages = rng.integers(20, 90, size=n)
    site = [sites[i % len(sites)] for i in range(n)]
    prob = 1 / (1 + np.exp(-logits.astype(np.float64)))
    with open(out / "store" / "index.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "class", "logit", "probability", "label", "shard", "row", "Sex", "Age",
                    "Site"])
        for i in range(n):
            for t, name in enumerate(classes):
                w.writerow([keys[i], name, f"{logits[i, t]:.6g}", f"{prob[i, t]:.6g}",
                            int(label[i, t]), i // shard_size, i % shard_size,
                            "Female" if i % 3 else "Male", int(ages[i]), site[i]])
    centres = rng.normal(scale=30, size=(clusters, 2))
    xy = centres[cluster] + rng.normal(scale=6, size=(n, T, 2))
    with open(out / "members.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["class", "image", "cluster", "x", "y", "corners", "test_effect"])
        for t, name in enumerate(classes):
            for i in range(n):
                w.writerow([name, keys[i], int(cluster[i, t]), f"{xy[i, t, 0]:.5g}",
                            f"{xy[i, t, 1]:.5g}", "0.1", ""])
    result = {"summary": {"images": n, "classes": ", ".join(classes), "method": "synthetic"},
              "classes": {}}
    for t, name in enumerate(classes):
        cl = []
        for c in range(clusters):
            members = np.flatnonzero(cluster[:, t] == c)
            side = 64
            r0, c0 = (c // 2) * (side - 8), (c % 2) * (side - 8)
            cl.append({"id": c, "size": int(len(members)), "fraction": len(members) / n,
                       "members": [keys[i] for i in members],
                       "typical": [keys[i] for i in members[:4]],
                       "verdict": "flagged" if c == 0 else "not a suspect", "flagged": c == 0,
                       "suspect": c == 0, "why": "synthetic",
                       "sentence": f"cluster {c} of {name}: evidence in a corner",
                       "distinctive_region": {"bbox": [r0, c0, r0 + 7, c0 + 7], "side": side,
                                              "words": f"corner {c}"},
                       "counterfactual": {"effect": 0.5 if c == 0 else 0.01, "ci_low": 0.0,
                                          "ci_high": 1.0, "p_value": 0.01, "tested": [],
                                          "per_image": []}})
        result["classes"][name] = {"population": "all", "images": n, "note": "",
                                   "n_clusters": clusters, "eigenvalues": [0.0] * clusters,
                                   "embedding": "synthetic", "clusters": cl, "strategies": []}
    (out / "audit.json").write_text(json.dumps(result))
    (out / "figures").mkdir(exist_ok=True)
    return out
