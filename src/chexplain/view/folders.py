"""What a result folder holds: its kind (explain, compare, audit, or a folder of several such
as ``runs/demo``) and its sections, each one result read by its own reader."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ChexplainError

#: a result's kind -> the file that marks it
MARKERS = {"explain": "explain.json", "compare": "compare.json", "audit": "audit.json"}
#: files an audit needs beside audit.json
AUDIT_FILES = ("members.csv", "store/store.json", "store/index.csv")


@dataclass(frozen=True)
class Section:
    """One result inside the viewed folder: ``id`` is its position (used in URLs), ``name``
    its path relative to the viewed folder ("." for the folder itself)."""

    id: int
    kind: str
    path: Path
    name: str


@dataclass(frozen=True)
class ResultFolder:
    """The viewed folder: ``kind`` is a result kind, ``demo`` (``demo.json`` beside results)
    or ``results`` (a folder of results)."""

    root: Path
    kind: str
    sections: tuple[Section, ...]


def kind_of(path: Path) -> str | None:
    """The result kind whose marker file ``path`` holds (None if none)."""
    for kind, marker in MARKERS.items():
        if (path / marker).is_file():
            return kind
    return None


def _check(path: Path, kind: str) -> None:
    if kind == "audit":
        missing = [f for f in AUDIT_FILES if not (path / f).is_file()]
        if missing:
            raise ChexplainError(f"{path}: an audit without {', '.join(missing)} (an unfinished "
                                 "run? finish it with chexplain audit --resume)")


def open_folder(path: str | Path) -> ResultFolder:
    """Recognise the result folder ``path``; a one-line error names what is missing."""
    root = Path(path)
    if not root.exists():
        raise ChexplainError(f"{root}: no such folder")
    if not root.is_dir():
        raise ChexplainError(f"{root}: not a folder (give the folder a chexplain command wrote)")
    root = root.resolve()
    kind = kind_of(root)
    if kind is not None:
        _check(root, kind)
        return ResultFolder(root, kind, (Section(0, kind, root, "."),))
    found = []
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError as exc:
        raise ChexplainError(f"{root}: cannot read ({exc.strerror})") from None
    order = list(MARKERS)
    kinds = [(child, kind_of(child)) for child in children]
    for child, k in sorted(((c, k) for c, k in kinds if k is not None),
                           key=lambda ck: (order.index(ck[1]), ck[0].name)):
        _check(child, k)
        found.append(Section(len(found), k, child, child.name))
    if not found:
        names = ", ".join(MARKERS.values())
        raise ChexplainError(f"{root}: not a chexplain result folder (no {names} in it or in "
                             "its subfolders)")
    return ResultFolder(root, "demo" if (root / "demo.json").is_file() else "results", tuple(found))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file a result holds; a one-line error names it when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ChexplainError(f"{path}: cannot read ({exc})") from None


def inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` when it is a file inside ``root`` (no ``..``, no absolute path, no
    link leading out); None otherwise."""
    if not relative or "\x00" in relative:
        return None
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        return None
    full = (root / candidate).resolve()
    if not full.is_relative_to(root.resolve()) or not full.is_file():
        return None
    return full


def source_file(recorded: str, root: Path) -> Path | None:
    """The input image a result names (absolute, or relative to the working folder, to the
    result or to one of its parents), when it can still be read; None otherwise."""
    p = Path(recorded)
    if p.is_absolute():
        return p if p.is_file() else None
    for base in (Path.cwd(), root, *root.parents):
        if (base / p).is_file():
            return base / p
    return None
