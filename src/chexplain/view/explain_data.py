"""An ``explain`` folder (:mod:`chexplain.jobs.explain`) for the viewer: its images page by
page, and per image the stored maps of every method and class."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..io import slug
from ..viz.figures import style
from .folders import read_json, source_file
from .truth import has_truth


@dataclass(frozen=True)
class StoredMap:
    """One method's map of one class for one image: the overlay PNG and the raw NPY."""

    method: str
    cls: str
    png: Path | None
    npy: Path | None


class ExplainData:
    """Reads ``explain.json`` once; map files are found when an image is opened."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.summary: dict[str, Any] = read_json(folder / "explain.json")
        self.images: list[dict[str, Any]] = list(self.summary.get("images") or [])
        self.methods: list[str] = list(self.summary.get("methods") or [])

    def __len__(self) -> int:
        return len(self.images)

    @cached_property
    def names(self) -> list[str]:
        return list(self.summary.get("checkpoint_observations") or
                    (self.images[0]["probabilities"] if self.images else []))

    def record(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self.images):
            raise KeyError(i)
        return self.images[i]

    def image_folder(self, i: int) -> Path:
        """The image's folder inside this result (its recorded name, whatever the path was)."""
        return self.folder / Path(str(self.record(i).get("folder", ""))).name

    def page(self, offset: int, limit: int) -> dict[str, Any]:
        """Images ``offset`` … ``offset + limit``: identity, top findings, labels."""
        items = []
        for i in range(offset, min(offset + limit, len(self.images))):
            rec = self.images[i]
            probs = rec.get("probabilities") or {}
            top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
            items.append({"index": i, "identity": rec.get("identity", ""),
                          "top": [{"class": c, "p": p} for c, p in top],
                          "explained": rec.get("explained", [])})
        return {"total": len(self.images), "offset": offset, "items": items}

    def maps(self, i: int) -> list[StoredMap]:
        folder = self.image_folder(i)
        out = []
        for m in self.methods:
            for c in self.record(i).get("explained", []):
                base = folder / slug(m) / slug(c)
                png, npy = base.with_suffix(".png"), base.with_suffix(".npy")
                if png.is_file() or npy.is_file():
                    out.append(StoredMap(m, c, png if png.is_file() else None,
                                         npy if npy.is_file() else None))
        return out

    def find_map(self, i: int, method: str, cls: str) -> StoredMap | None:
        return next((s for s in self.maps(i) if s.method == method and s.cls == cls), None)

    def source(self, i: int) -> Path | None:
        return source_file(str(self.record(i).get("path", "")), self.folder)

    def detail(self, i: int) -> dict[str, Any]:
        rec = self.record(i)
        src = self.source(i)
        stored = self.maps(i)
        known = {cls: has_truth(src, cls) for cls in dict.fromkeys(s.cls for s in stored)}
        maps = []
        for s in stored:
            st = style(s.method)
            maps.append({"method": s.method, "class": s.cls, "cmap": st["cmap"], "norm": st["norm"],
                         "alpha": st["alpha"], "raw": s.npy is not None, "mask": known[s.cls]})
        probs = rec.get("probabilities") or {}
        labels = rec.get("labels") or {}
        return {"index": i, "identity": rec.get("identity", ""), "path": rec.get("path", ""),
                "folder": self.image_folder(i).name,
                "source": src is not None, "methods": self.methods,
                "classes": rec.get("explained", []), "maps": maps,
                "findings": [{"class": c, "p": probs[c], "label": labels.get(c)}
                             for c in sorted(probs, key=lambda c: -probs[c])],
                "figures": [Path(f).name for f in rec.get("figures", [])]}

    def raw_map(self, i: int, method: str, cls: str) -> np.ndarray | None:
        s = self.find_map(i, method, cls)
        if s is None or s.npy is None:
            return None
        return np.load(s.npy, allow_pickle=False)
