"""A ``compare`` folder (:mod:`chexplain.evaluate.compare`) for the viewer: the metric table
with its intervals, and per method and metric its best and worst items."""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Any

from ..evaluate.metrics import HIGHER_IS_BETTER, METRIC_LABELS, METRICS
from .folders import read_json, source_file

PLOTS = ("aopc_curves.png", "localisation.png", "randomisation.png")


class CompareData:
    """Reads ``compare.json`` once and ``items.csv`` when items are first asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.result: dict[str, Any] = read_json(folder / "compare.json")

    @property
    def methods(self) -> list[str]:
        return list(self.result.get("summary") or {})

    def overview(self) -> dict[str, Any]:
        summary = self.result.get("summary") or {}
        metrics = [m for m in METRICS if any(m in v for v in summary.values())]
        return {"methods": self.methods, "metrics": metrics,
                "labels": {m: METRIC_LABELS.get(m, m) for m in metrics},
                "higher_is_better": {m: HIGHER_IS_BETTER.get(m, True) for m in metrics},
                "summary": summary, "n_items": self.result.get("n_items"),
                "n_images": self.result.get("n_images"),
                "classes": self.result.get("classes", []),
                "perturbation": self.result.get("perturbation", ""),
                "plots": [p for p in PLOTS if (self.folder / p).is_file()]}

    @cached_property
    def items(self):
        import pandas as pd

        path = self.folder / "items.csv"
        if not path.is_file():
            return pd.DataFrame(columns=["image", "class", "method", *METRICS])
        return pd.read_csv(path, dtype={"image": str, "class": str, "method": str},
                           keep_default_na=False, na_values=[""])

    def extremes(self, method: str, metric: str, n: int) -> dict[str, Any]:
        """The ``n`` best and ``n`` worst items of ``method`` under ``metric``."""
        if method not in self.methods:
            raise KeyError(method)
        if metric not in METRICS:
            raise KeyError(metric)
        frame = self.items
        sel = frame[(frame["method"] == method)]
        sel = sel[sel[metric].notna()] if metric in sel else sel.iloc[:0]
        ordered = sel.sort_values(metric, ascending=not HIGHER_IS_BETTER[metric], kind="stable")

        def rows(part) -> list[dict[str, Any]]:
            return [{"row": int(idx), "image": r["image"], "class": r["class"],
                     "value": _num(r[metric]),
                     "metrics": {m: _num(r[m]) for m in METRICS if m in r}}
                    for idx, r in part.iterrows()]

        return {"method": method, "metric": metric, "n": int(len(ordered)),
                "best": rows(ordered.iloc[:n]), "worst": rows(ordered.iloc[::-1].iloc[:n])}

    def item_image(self, row: int) -> tuple[Path | None, str | None]:
        """The input image of items.csv's ``row`` and its class (None when not readable)."""
        frame = self.items
        if not 0 <= row < len(frame):
            raise KeyError(row)
        r = frame.iloc[row]
        return source_file(str(r["image"]), self.folder), str(r["class"])


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
