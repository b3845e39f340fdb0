"""An ``audit`` folder (:mod:`chexplain.audit`) for the viewer, read lazily: ``audit.json``
once, ``members.csv`` and ``store/index.csv`` once (only their columns, categories kept as
codes), and the shards' images and maps only for the members on screen (the maps through a
memory map, each shard's deflated images decompressed once and kept in a small cache)."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..audit.store import ShardPlan, ShardStore
from ..errors import ChexplainError
from ..io import slug

INDEX_FIXED = ("image", "class", "logit", "probability", "label", "shard", "row")
#: colourings every audit has; the store's metadata columns come after them
BASE_COLOURS = ("cluster", "label", "prediction")
MAX_LEVELS = 12  #: a column with more values shows the 11 most common and "other"
_DROP = ("members", "tested", "per_image")  #: long lists the page never needs


def _lean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _lean(v) for k, v in obj.items() if k not in _DROP}
    if isinstance(obj, list):
        return [_lean(v) for v in obj]
    return obj


class AuditData:
    """One audit folder; every read is of what the audit wrote."""

    def __init__(self, folder: Path, shard_cache: int = 8) -> None:
        self.folder = folder
        try:
            self.result: dict[str, Any] = json.loads((folder / "audit.json").read_text())
            meta = json.loads((folder / "store" / "store.json").read_text())
            self.plan = ShardPlan(int(meta["n_images"]), int(meta["shard_size"]))
            self.store_classes: list[str] = list(meta["fingerprint"]["classes"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ChexplainError(f"{folder}: cannot read the audit ({exc})") from None
        self.store = ShardStore(folder / "store")
        self.store.attach(meta["fingerprint"], self.plan)  # every shard read proves its run
        self.classes: list[str] = list(self.result.get("classes") or {})
        self._cache: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        self._cache_size = shard_cache
        self._lock = threading.Lock()
        self._tables: dict[str, Any] = {}

    # -- tables -------------------------------------------------------------------------
    @cached_property
    def _members(self):
        import pandas as pd

        return pd.read_csv(self.folder / "members.csv", usecols=["class", "image", "cluster", "x", "y"],
                           dtype={"class": "category", "image": str, "cluster": np.int32,
                                  "x": np.float32, "y": np.float32}, keep_default_na=False,
                           na_values=["", "nan"])

    @cached_property
    def _index(self):
        import pandas as pd

        path = self.folder / "store" / "index.csv"
        header = next(csv.reader(io.StringIO(path.open(encoding="utf-8").readline())))
        meta = [c for c in header if c not in INDEX_FIXED]
        return pd.read_csv(path, usecols=["image", "class", "probability", "label", "shard", "row",
                                          *meta],
                           dtype={"image": str, "class": "category", "probability": np.float32,
                                  "label": np.float32, "shard": np.int32, "row": np.int32,
                                  **{c: "category" for c in meta}},
                           keep_default_na=False, na_values={"label": [""], "probability": [""]})

    @property
    def meta_columns(self) -> list[str]:
        return [c for c in self._index.columns if c not in INDEX_FIXED]

    def table(self, cls: str):
        """The class's members in members.csv's order, with their index rows."""
        if cls not in self.classes:
            raise KeyError(cls)
        with self._lock:
            if cls not in self._tables:
                m = self._members
                mine = m[m["class"] == cls].drop(columns="class").reset_index(drop=True)
                idx = self._index
                own = idx[idx["class"] == cls].drop(columns="class").drop_duplicates("image")
                self._tables[cls] = mine.merge(own, on="image", how="left", sort=False)
            return self._tables[cls]

    # -- what the page asks for ----------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        classes = []
        for name in self.classes:
            c = self.result["classes"][name]
            s = slug(name)
            figs = [f"figures/{s}_{k}.png" for k in ("prototypes", "embedding", "eigenvalues")]
            figs += [f"figures/{s}_strategy{st['id']}.png" for st in c.get("strategies", [])]
            classes.append({"name": name, "images": c.get("images"), "population": c.get("population"),
                            "note": c.get("note", ""), "n_clusters": c.get("n_clusters", 0),
                            "embedding": c.get("embedding"),
                            "figures": [f for f in figs if (self.folder / f).is_file()]})
        return {"summary": self.result.get("summary", {}), "classes": classes,
                "colour_by": list(BASE_COLOURS) + self.meta_columns, "images": self.plan.n_images}

    def clusters(self, cls: str) -> list[dict[str, Any]]:
        """The class's clusters as audit.json has them (without the member lists), each with
        its typical members' rows."""
        import pandas as pd

        c = self.result["classes"][cls]
        where = pd.Index(self.table(cls)["image"])
        out = []
        for cl in c.get("clusters", []):
            rec = _lean(cl)
            rows = where.get_indexer(cl.get("typical", []))
            rec["typical_rows"] = [int(r) for r in rows if r >= 0]
            out.append(rec)
        return out

    def points(self, cls: str, by: str) -> dict[str, Any]:
        """x, y and a category code per member (``levels`` names the codes)."""
        t = self.table(cls)
        if by == "cluster":
            values = t["cluster"].astype(str).to_numpy()
        elif by == "label":
            lab = t["label"].to_numpy()
            values = np.where(np.isnan(lab), "unknown", np.where(lab == 1, "positive", "negative"))
        elif by == "prediction":
            p = t["probability"].to_numpy()
            values = np.where(np.isnan(p), "unknown", np.where(p >= 0.5, "predicted positive",
                                                                "predicted negative"))
        elif by in self.meta_columns:
            values = t[by].astype(str).replace("", "unknown").to_numpy()
        else:
            raise KeyError(by)
        levels, codes = np.unique(values.astype(str), return_inverse=True)
        if len(levels) > MAX_LEVELS:
            order = np.argsort(-np.bincount(codes), kind="stable")
            keep = order[:MAX_LEVELS - 1]
            remap = np.full(len(levels), MAX_LEVELS - 1)
            remap[keep] = np.arange(len(keep))
            codes, levels = remap[codes], [*levels[keep], "other"]
        if by == "cluster":
            levels = [str(x) for x in levels]
        xy = t[["x", "y"]].to_numpy(dtype=np.float64)
        finite = np.isfinite(xy).all(1)
        return {"n": int(len(t)), "x": _round(xy[:, 0], finite), "y": _round(xy[:, 1], finite),
                "code": codes.astype(int).tolist(), "levels": [str(v) for v in levels]}

    def rows(self, cls: str, rows: Sequence[int]) -> list[dict[str, Any]]:
        t = self.table(cls)
        out = []
        for r in rows:
            if not 0 <= r < len(t):
                raise KeyError(r)
            rec = t.iloc[int(r)]
            out.append({"row": int(r), "image": rec["image"], "cluster": int(rec["cluster"]),
                        "probability": _float(rec["probability"]), "label": _float(rec["label"]),
                        "meta": {c: str(rec[c]) for c in self.meta_columns}})
        return out

    def export_csv(self, cls: str, rows: Sequence[int]) -> str:
        """The chosen members as CSV: class, image, cluster, x, y, label, probability, metadata."""
        t = self.table(cls)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["class", "image", "cluster", "x", "y", "label", "probability", *self.meta_columns])
        for r in rows:
            if not 0 <= r < len(t):
                raise KeyError(r)
            rec = t.iloc[int(r)]
            w.writerow([cls, rec["image"], int(rec["cluster"]), _text(rec["x"]), _text(rec["y"]),
                        _text(rec["label"], int), _text(rec["probability"]),
                        *[str(rec[c]) for c in self.meta_columns]])
        return buf.getvalue()

    # -- the stored arrays ---------------------------------------------------------------
    def position(self, cls: str, row: int) -> int:
        t = self.table(cls)
        if not 0 <= row < len(t):
            raise KeyError(row)
        shard, r = t["shard"].iloc[row], t["row"].iloc[row]
        if np.isnan(float(shard)):
            raise KeyError(row)
        return int(shard) * self.plan.shard_size + int(r)

    def _deflated(self, shard: int, key: str) -> np.ndarray:
        with self._lock:
            if (shard, key) in self._cache:
                self._cache.move_to_end((shard, key))
                return self._cache[(shard, key)]
        a = self.store.column(self.plan, key, np.array(self.plan.positions(shard)))
        with self._lock:
            self._cache[(shard, key)] = a
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return a

    def arrays(self, cls: str, row: int) -> dict[str, np.ndarray | None]:
        """The member's grey image, relevance map (64 px) and finding mask (None if unknown)."""
        pos = self.position(cls, row)
        t = self.store_classes.index(cls)
        shard, r = divmod(pos, self.plan.shard_size)
        image = self._deflated(shard, "image64")[r]
        rel = self.store.column(self.plan, "maps64", np.array([pos]), t)[0]
        has = self._deflated(shard, "has_finding")[r, t]
        finding = self._deflated(shard, "finding64")[r, t] if has else None
        return {"image": image, "map": rel, "finding": finding}


def _round(v: np.ndarray, finite: np.ndarray) -> list[float | None]:
    r = np.round(v, 4)
    return [float(a) if f else None for a, f in zip(r.tolist(), finite.tolist())]


def _float(v: Any) -> float | None:
    f = float(v)
    return None if np.isnan(f) else f


def _text(v: Any, kind=float) -> str:
    f = float(v)
    return "" if np.isnan(f) else (str(int(f)) if kind is int else f"{f:.6g}")
