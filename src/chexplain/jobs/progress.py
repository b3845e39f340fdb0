"""``explain``'s progress over many images: finished images survive an interruption.

``out/progress.jsonl`` holds the run's fingerprint (first line: options and the model's
identity) and one record per finished image (appended and flushed to disk after the image's
maps and figures are written); ``out/predictions.csv`` grows by one row per image the same
way. ``--resume`` reads the records back, skips those images and refuses a run whose
fingerprint differs (naming the first differing option). A line cut off by a kill is dropped.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import ChexplainError
from ..io import atomic_path

PROGRESS = "progress.jsonl"


@dataclass
class Progress:
    """The records of the finished images of one ``explain`` run under ``out``."""

    out: Path
    names: Sequence[str]
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  #: path → record

    @property
    def path(self) -> Path:
        return self.out / PROGRESS

    def start(self, fingerprint: dict[str, Any], resume: bool) -> None:
        """Read the finished images (``resume``) or start afresh; write the fingerprint and
        the predictions table of what is done."""
        if resume and self.path.is_file():
            old, self.done = _read(self.path)
            if old is not None:
                for key in sorted(set(old) | set(fingerprint)):
                    if old.get(key) != fingerprint.get(key):
                        raise ChexplainError(
                            f"--resume: {key} differs from the run in {self.out} "
                            f"({old.get(key)!r} vs {fingerprint.get(key)!r}); resume with the same "
                            "options and model or choose another --out")
        else:
            self.done = {}
        with atomic_path(self.path) as tmp:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({"fingerprint": fingerprint}) + "\n")
                for rec in self.done.values():
                    fh.write(json.dumps({"record": rec}) + "\n")
        with atomic_path(self.out / "predictions.csv") as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["Path", *self.names])
                w.writerows(_row(r, self.names) for r in self.done.values())

    def add(self, record: dict[str, Any]) -> None:
        """Append a finished image to the progress file and the predictions table."""
        self.done[record["path"]] = record
        _append(self.path, json.dumps({"record": record}) + "\n")
        with open(self.out / "predictions.csv", "a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(_row(record, self.names))
            fh.flush()
            os.fsync(fh.fileno())


def _row(record: dict[str, Any], names: Sequence[str]) -> list[str]:
    return [record["path"]] + [f"{record['probabilities'][n]:.6f}" for n in names]


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def _read(path: Path) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    fingerprint, done = None, {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:  # cut off by a kill: that image is explained again
            continue
        if isinstance(item, dict) and isinstance(item.get("fingerprint"), dict):
            fingerprint = item["fingerprint"]
        elif isinstance(item, dict) and isinstance(item.get("record"), dict) and "path" in item["record"]:
            done[item["record"]["path"]] = item["record"]
    return fingerprint, done
