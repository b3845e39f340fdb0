"""The relevance store of an audit: compressed NPY shards and one index CSV.

Layout of ``OUT/store``::

    store.json          the run's fingerprint (checkpoint and data digests, classes, method,
                        sizes, shard and batch size) and the number of images and shards
    shard-00000.npz     shard k: dataset positions [k·S, (k+1)·S), written atomically once
                        (relevance maps stored, the rest deflated: :func:`save_npz`)
                        complete: ``positions`` (n,), ``logits`` (n, T), ``maps32`` and
                        ``maps64`` (n, T, s, s) sum-pooled relevance, ``image64`` (n, 64, 64)
                        the grey input, ``finding64`` (n, T, 64, 64) known finding masks,
                        ``has_finding`` (n, T); ``full`` (n, T, H, W) float16 on request
    index.csv           one row per image and class: image, class, logit, probability, label,
                        shard, row and the image's metadata (written by rank 0 at the end)

A shard's bytes depend only on the run's fingerprint (the zip members carry a fixed date), so
a killed run resumed with the same fingerprint ends with the same store as an uninterrupted
one, and ``torchrun`` ranks (shard k is explained by rank k mod N) give the same shards too.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import ChexplainError, DataError
from ..io import atomic_path, write_json
from ..io import file_sha256 as file_digest  # noqa: F401 - used by sources and run

STORE_VERSION = 1
RAW_MEMBERS = ("maps32", "maps64", "full")  #: stored without compression (see save_npz)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def text_digest(items: Iterable[Any]) -> str:
    """SHA-256 of the items' text, one per line."""
    h = hashlib.sha256()
    for item in items:
        h.update(str(item).encode("utf-8") + b"\n")
    return h.hexdigest()


def save_npz(path: Path, arrays: dict[str, np.ndarray], raw: Iterable[str] = ()) -> None:
    """A ``.npz`` whose bytes depend only on the arrays (fixed member dates), atomic; members
    named in ``raw`` are stored, the others deflated (level 1).

    Relevance maps hardly compress (deflate kept 79–91 % of their bytes on a phantom shard)
    and compressing them took two thirds of a shard's write time, about as long as LRP on a
    tiny model; images and masks compress well and cheaply."""
    raw = set(raw)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, array in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_STORED if name in raw else zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getbuffer())


@dataclass(frozen=True)
class ShardPlan:
    """Which dataset positions each shard holds."""

    n_images: int
    shard_size: int

    @property
    def n_shards(self) -> int:
        return -(-self.n_images // self.shard_size)

    def positions(self, shard: int) -> range:
        start = shard * self.shard_size
        return range(start, min(start + self.shard_size, self.n_images))

    def for_rank(self, rank: int, world_size: int) -> list[int]:
        return list(range(rank, self.n_shards, world_size))


class ShardStore:
    """The shards of one audit run under ``folder`` (see the module doc)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def meta_path(self) -> Path:
        return self.folder / "store.json"

    def shard_path(self, k: int) -> Path:
        return self.folder / f"shard-{k:05d}.npz"

    def open(self, fingerprint: dict[str, Any], plan: ShardPlan, resume: bool) -> None:
        """Start a new store or, with ``resume``, continue one with the same fingerprint.

        Refuses an existing store without ``resume`` and a resume whose fingerprint differs
        (naming the first differing option)."""
        meta = {"version": STORE_VERSION, "fingerprint": fingerprint,
                "n_images": plan.n_images, "shard_size": plan.shard_size,
                "n_shards": plan.n_shards}
        if self.meta_path.is_file():
            if not resume:
                raise ChexplainError(f"{self.folder.parent} already holds an audit (store/store.json); "
                                     "pass --resume to continue it or choose another --out")
            old = json.loads(self.meta_path.read_text())
            if old.get("version") != STORE_VERSION:
                raise ChexplainError(f"{self.meta_path}: store version {old.get('version')} "
                                     f"is not {STORE_VERSION}; start a new --out")
            for key in sorted(set(old["fingerprint"]) | set(fingerprint)):
                if old["fingerprint"].get(key) != fingerprint.get(key):
                    raise ChexplainError(
                        f"--resume: {key} differs from the stored run "
                        f"({old['fingerprint'].get(key)!r} vs {fingerprint.get(key)!r}); "
                        "resume with the same options or choose another --out")
            if old != meta:
                raise ChexplainError(f"{self.meta_path}: the stored plan differs; choose another --out")
            return
        write_json(self.meta_path, meta)

    def done(self, plan: ShardPlan) -> set[int]:
        """Shards already written (complete by construction: written atomically)."""
        return {k for k in range(plan.n_shards) if self.shard_path(k).is_file()}

    def write_shard(self, k: int, arrays: dict[str, np.ndarray]) -> Path:
        path = self.shard_path(k)
        save_npz(path, arrays, raw=RAW_MEMBERS)
        return path

    def read(self, plan: ShardPlan, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The listed arrays of every shard, concatenated in position order."""
        keys = list(keys)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for s in range(plan.n_shards):
            path = self.shard_path(s)
            if not path.is_file():
                raise DataError(f"{path}: shard missing; rerun with --resume to finish the store")
            with np.load(path) as z:
                for k in keys:
                    parts[k].append(z[k])
        return {k: np.concatenate(v) for k, v in parts.items()}
