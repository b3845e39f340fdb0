"""The viewer's routes: each takes the request's query and returns a :class:`Reply` (JSON,
PNG or CSV). The readers of the result folders are made on first use and kept."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs

import numpy as np

from . import images, truth
from .folders import ResultFolder, Section, inside

MAX_PAGE = 500  #: the most items one page of any list carries
COMPARE_SIDE = 256  #: the longest side of a comparison's radiographs
FILE_TYPES = {".png": "image/png", ".csv": "text/csv; charset=utf-8",
              ".json": "application/json; charset=utf-8", ".md": "text/plain; charset=utf-8"}


@dataclass
class Reply:
    """An answer: status, body and its content type (and extra headers)."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(ValueError):
    """A query the page would never send: 400 with the reason."""


def json_reply(obj: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(obj, allow_nan=False).encode("utf-8"),
                 "application/json; charset=utf-8")


def png_reply(data: bytes) -> Reply:
    return Reply(200, data, "image/png", {"Cache-Control": "max-age=300"})


class Query:
    """The query string's values, checked."""

    def __init__(self, text: str) -> None:
        self.values = {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def text(self, key: str, default: str | None = None) -> str:
        v = self.values.get(key, default)
        if v is None:
            raise BadRequest(f"missing parameter {key!r}")
        return v

    def integer(self, key: str, default: int | None = None, low: int = 0,
                high: int = 2 ** 31) -> int:
        raw = self.values.get(key)
        if raw is None and default is not None:
            return default
        try:
            v = int(self.text(key))
        except ValueError:
            raise BadRequest(f"parameter {key!r} must be an integer") from None
        if not low <= v <= high:
            raise BadRequest(f"parameter {key!r} must lie in [{low}, {high}]")
        return v


class Api:
    """Every route over one viewed :class:`ResultFolder`."""

    def __init__(self, folder: ResultFolder) -> None:
        self.folder = folder
        self._readers: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.routes: dict[str, Callable[[Query], Reply]] = {
            "/api/info": self.info, "/file": self.file, "/img/colorbar": self.colorbar,
            "/api/explain/page": self.explain_page, "/api/explain/item": self.explain_item,
            "/img/explain/bg": self.explain_bg, "/img/explain/thumb": self.explain_thumb, "/img/explain/map": self.explain_map,
            "/img/explain/mask": self.explain_mask,
            "/api/compare": self.compare, "/api/compare/extremes": self.compare_extremes,
            "/img/compare/item": self.compare_image, "/img/compare/mask": self.compare_mask,
            "/api/audit": self.audit, "/api/audit/clusters": self.audit_clusters,
            "/api/audit/points": self.audit_points, "/api/audit/rows": self.audit_rows,
            "/img/audit/member": self.audit_member,
        }

    # -- sections ------------------------------------------------------------------------
    def section(self, q: Query, kind: str | None = None) -> Section:
        s = q.integer("s", 0, 0, len(self.folder.sections) - 1)
        sec = self.folder.sections[s]
        if kind is not None and sec.kind != kind:
            raise BadRequest(f"section {s} is a {sec.kind} result, not {kind}")
        return sec

    def reader(self, q: Query, kind: str):
        sec = self.section(q, kind)
        with self._lock:
            if sec.id not in self._readers:
                from .audit_data import AuditData
                from .compare_data import CompareData
                from .explain_data import ExplainData

                cls = {"explain": ExplainData, "compare": CompareData, "audit": AuditData}[kind]
                self._readers[sec.id] = cls(sec.path)
            return self._readers[sec.id]

    def info(self, q: Query) -> Reply:
        f = self.folder
        return json_reply({"root": f.root.name, "kind": f.kind,
                           "sections": [{"id": s.id, "kind": s.kind, "name": s.name}
                                        for s in f.sections]})

    def file(self, q: Query) -> Reply:
        """A file the result holds (PNG, CSV, JSON), only from inside its section."""
        sec = self.section(q)
        path = inside(sec.path, q.text("p"))
        if path is None or path.suffix.lower() not in FILE_TYPES:
            raise KeyError(q.text("p"))
        return Reply(200, path.read_bytes(), FILE_TYPES[path.suffix.lower()])

    def colorbar(self, q: Query) -> Reply:
        return png_reply(_cached_colorbar(q.text("cmap", "bwr")))

    # -- explain -------------------------------------------------------------------------
    def explain_page(self, q: Query) -> Reply:
        data = self.reader(q, "explain")
        return json_reply(data.page(q.integer("offset", 0), q.integer("limit", 60, 1, MAX_PAGE)))

    def explain_item(self, q: Query) -> Reply:
        data = self.reader(q, "explain")
        i = q.integer("i")
        out = data.detail(i)
        norm = q.text("norm", "")
        for m in out["maps"]:
            R = data.raw_map(i, m["method"], m["class"])
            if norm in images.NORMS:
                m["norm"] = norm
            if R is not None:
                sc = images.map_scale(R, m["norm"])
                m["scale"] = {"low": sc.low, "high": sc.high}
        return json_reply(out)

    def explain_bg(self, q: Query) -> Reply:
        data = self.reader(q, "explain")
        src = data.source(q.integer("i"))
        if src is None:
            raise KeyError("source image")
        return png_reply(images.radiograph_png(src))

    def explain_thumb(self, q: Query) -> Reply:
        """The radiograph, small; the first stored overlay when the input is gone."""
        data = self.reader(q, "explain")
        i = q.integer("i")
        src = data.source(i)
        if src is not None:
            return png_reply(images.radiograph_png(src, 192))
        first = next((m.png for m in data.maps(i) if m.png is not None), None)
        if first is None:
            raise KeyError("image")
        return png_reply(first.read_bytes())

    def explain_map(self, q: Query) -> Reply:
        data = self.reader(q, "explain")
        i, method, cls = q.integer("i"), q.text("m"), q.text("c")
        stored = data.find_map(i, method, cls)
        if stored is None:
            raise KeyError(f"{method}/{cls}")
        if stored.npy is None or q.text("overlay", "") == "1":
            if stored.png is None:
                raise KeyError(f"{method}/{cls}")
            return png_reply(stored.png.read_bytes())
        from ..viz.figures import style

        st = style(method)
        norm = q.text("norm", st["norm"])
        return png_reply(images.map_png(np.load(stored.npy, allow_pickle=False), st["cmap"], norm))

    def explain_mask(self, q: Query) -> Reply:
        src = self.reader(q, "explain").source(q.integer("i"))
        return _outline(src, q.text("c"), images.DISPLAY)

    # -- compare -------------------------------------------------------------------------
    def compare(self, q: Query) -> Reply:
        return json_reply(self.reader(q, "compare").overview())

    def compare_extremes(self, q: Query) -> Reply:
        data = self.reader(q, "compare")
        return json_reply(data.extremes(q.text("method"), q.text("metric"),
                                        q.integer("n", 6, 1, 100)))

    def compare_image(self, q: Query) -> Reply:
        src, _ = self.reader(q, "compare").item_image(q.integer("row"))
        if src is None:
            raise KeyError("image")
        return png_reply(images.radiograph_png(src, COMPARE_SIDE))

    def compare_mask(self, q: Query) -> Reply:
        src, cls = self.reader(q, "compare").item_image(q.integer("row"))
        return _outline(src, cls, COMPARE_SIDE)

    # -- audit ---------------------------------------------------------------------------
    def audit(self, q: Query) -> Reply:
        return json_reply(self.reader(q, "audit").overview())

    def audit_clusters(self, q: Query) -> Reply:
        return json_reply(_finite(self.reader(q, "audit").clusters(q.text("c"))))

    def audit_points(self, q: Query) -> Reply:
        return json_reply(self.reader(q, "audit").points(q.text("c"), q.text("by", "cluster")))

    def audit_rows(self, q: Query) -> Reply:
        return json_reply(self.reader(q, "audit").rows(q.text("c"), _rows(q.text("rows"))))

    def audit_member(self, q: Query) -> Reply:
        data = self.reader(q, "audit")
        a = data.arrays(q.text("c"), q.integer("r"))
        layer = q.text("layer", "overlay")
        if layer == "image":
            return png_reply(images.png_bytes(images.grey_uint8(a["image"])))
        if layer == "map":
            return png_reply(images.map_png(a["map"], "bwr", "symmetric"))
        if layer == "finding":
            if a["finding"] is None:
                raise KeyError("finding mask")
            return png_reply(images.outline_png(a["finding"]))
        if layer == "overlay":
            from ..viz.render import overlay

            return png_reply(images.png_bytes(overlay(a["map"].astype(np.float64), a["image"],
                                                      alpha=0.5, cmap="bwr", norm="symmetric")))
        raise BadRequest(f"unknown layer {layer!r}")

    def audit_export(self, body: bytes) -> Reply:
        try:
            req = json.loads(body.decode("utf-8"))
            sec, cls, rows = int(req["s"]), str(req["c"]), [int(r) for r in req["rows"]]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise BadRequest("export needs JSON {s, c, rows}") from None
        data = self.reader(Query(f"s={sec}"), "audit")
        text = data.export_csv(cls, rows)
        return Reply(200, text.encode("utf-8"), "text/csv; charset=utf-8",
                     {"Content-Disposition": 'attachment; filename="members.csv"'})


def _rows(text: str) -> list[int]:
    try:
        rows = [int(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise BadRequest("rows must be integers separated by commas") from None
    if len(rows) > MAX_PAGE:
        raise BadRequest(f"at most {MAX_PAGE} rows at once")
    return rows


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


_colorbars: dict[str, bytes] = {}


def _cached_colorbar(cmap: str) -> bytes:
    if cmap not in _colorbars:
        if len(_colorbars) > 32:
            _colorbars.clear()
        _colorbars[cmap] = images.colorbar_png(cmap)
    return _colorbars[cmap]


def _outline(image, cls: str, side: int) -> Reply:
    """The outline of ``cls``'s ground truth on ``image`` (a mask or boxes, see
    :mod:`chexplain.view.truth`) at the radiograph's displayed size; 404 when unknown."""
    if image is None:
        raise KeyError("mask")
    mask = truth.finding_mask(image, cls, images.display_size(image, side))
    if mask is None:
        raise KeyError("mask")
    return png_reply(images.outline_png(mask))
