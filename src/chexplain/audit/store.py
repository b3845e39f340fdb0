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
                        ``run``: the run's id (SHA-256 of store.json's plan and fingerprint),
                        checked on resume and on every read: a shard proves which run wrote it
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
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import ChexplainError, DataError
from ..io import atomic_path, write_json

STORE_VERSION = 2
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


def run_id(meta: dict[str, Any]) -> str:
    """The id of a run: SHA-256 of its store.json content (version, fingerprint, plan)."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode("utf-8")).hexdigest()


def _shard_run(path: Path) -> str | None:
    """The run id a shard carries; None when the file is not a complete shard (cut off,
    not a zip, no ``run`` member: a shard of an older store)."""
    try:
        with zipfile.ZipFile(path) as zf:
            if "run.npy" not in zf.namelist():
                return None
            run = np.lib.format.read_array(io.BytesIO(zf.read("run.npy")), allow_pickle=False)
            return str(run.reshape(-1)[0])
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def _member_memmap(path: Path, name: str) -> np.ndarray | None:
    """A read-only memory map of the stored (uncompressed) member ``name`` of a ``.npz``;
    None when it is deflated (the caller loads it instead)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"{path}: bad local header of {name}")
        n_name, n_extra = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + n_name + n_extra)
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C",
                     offset=offset)


class ShardStore:
    """The shards of one audit run under ``folder`` (see the module doc)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.run: str | None = None  #: the run id the shards must carry (set by attach/open)

    def _meta(self, fingerprint: dict[str, Any], plan: ShardPlan) -> dict[str, Any]:
        return {"version": STORE_VERSION, "fingerprint": fingerprint,
                "n_images": plan.n_images, "shard_size": plan.shard_size,
                "n_shards": plan.n_shards}

    def attach(self, fingerprint: dict[str, Any], plan: ShardPlan) -> None:
        """Take the run id of this fingerprint and plan (every rank; :meth:`open` does it too)."""
        self.run = run_id(self._meta(fingerprint, plan))

    def _read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.meta_path}: not a readable store description ({exc}); "
                            "start a new --out (the shards cannot be trusted without it)") from None
        except OSError as exc:
            raise DataError(f"{self.meta_path}: cannot read ({exc.strerror})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("fingerprint"), dict):
            raise DataError(f"{self.meta_path}: not a store description (no fingerprint); "
                            "start a new --out")
        return meta

    def _stray_shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.npz")) if self.folder.is_dir() else []

    @property
    def meta_path(self) -> Path:
        return self.folder / "store.json"

    def shard_path(self, k: int) -> Path:
        return self.folder / f"shard-{k:05d}.npz"

    def open(self, fingerprint: dict[str, Any], plan: ShardPlan, resume: bool) -> None:
        """Start a new store or, with ``resume``, continue one with the same fingerprint.

        Refuses an existing store without ``resume`` and a resume whose fingerprint differs
        (naming the first differing option)."""
        meta = self._meta(fingerprint, plan)
        self.attach(fingerprint, plan)
        if self.meta_path.exists():
            if not resume:
                raise ChexplainError(f"{self.folder.parent} already holds an audit (store/store.json); "
                                     "pass --resume to continue it or choose another --out")
            old = self._read_meta()
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
        stray = self._stray_shards()
        if stray and not resume:  # shards without their store.json
            raise ChexplainError(
                f"{self.folder} holds {len(stray)} shard(s) but no store.json (e.g. {stray[0].name}); "
                "pass --resume to keep those this very run wrote (each shard names its run) or "
                "choose another --out")
        for path in stray:  # --resume: each shard proves which run wrote it
            run = _shard_run(path)
            if run is not None and run != self.run:
                raise ChexplainError(f"{path}: written by another run ({run[:12]}, this run is "
                                     f"{self.run[:12]}); choose another --out")
        write_json(self.meta_path, meta)

    def done(self, plan: ShardPlan) -> set[int]:
        """Shards already written by this run. A shard that is cut off or unreadable (a copy
        or a disk that failed) is removed with a warning and explained again; a shard of
        another run is an error (the store mixes runs)."""
        found = set()
        for k in range(plan.n_shards):
            path = self.shard_path(k)
            if not path.is_file():
                continue
            run = _shard_run(path)
            if run is None:
                warnings.warn(f"{path}: not a complete shard (cut off or unreadable); explaining "
                              "its images again", stacklevel=2)
                path.unlink(missing_ok=True)
            elif run != self.run:
                raise ChexplainError(f"{path}: written by another run ({run[:12]}, this run is "
                                     f"{str(self.run)[:12]}); choose another --out")
            else:
                found.add(k)
        return found

    def write_shard(self, k: int, arrays: dict[str, np.ndarray]) -> Path:
        if self.run is None:
            raise RuntimeError("ShardStore.write_shard before attach/open")
        path = self.shard_path(k)
        save_npz(path, {**arrays, "run": np.array([self.run])}, raw=RAW_MEMBERS)
        return path

    def _check_shard(self, path: Path) -> None:
        if not path.is_file():
            raise DataError(f"{path}: shard missing; rerun with --resume to finish the store")
        run = _shard_run(path)
        if run is None:
            raise DataError(f"{path}: not a complete shard (cut off or unreadable); rerun with "
                            "--resume to explain its images again")
        if self.run is not None and run != self.run:
            raise DataError(f"{path}: written by another run ({run[:12]}, this run is "
                            f"{self.run[:12]}); choose another --out")

    def column(self, plan: ShardPlan, key: str, positions: np.ndarray,
               t: int | None = None) -> np.ndarray:
        """``key``'s rows at the sorted dataset ``positions`` (column ``t`` of the second axis
        when given), read shard by shard: the stored relevance maps through a memory map, so
        that only the chosen rows and class are ever in memory."""
        positions = np.asarray(positions, dtype=np.int64)
        out, start = None, 0  # filled shard by shard: no list of parts to concatenate
        for s in np.unique(positions // plan.shard_size):
            path = self.shard_path(int(s))
            self._check_shard(path)
            rows = positions[positions // plan.shard_size == s] - int(s) * plan.shard_size
            try:
                mm = _member_memmap(path, key) if key in RAW_MEMBERS else None
                if mm is not None:
                    part = np.asarray(mm[rows] if t is None else mm[rows, t])  # a gathered copy
                    del mm
                else:
                    with np.load(path) as z:
                        a = z[key]
                    part = a[rows] if t is None else a[rows, t]
                    del a
            except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
                raise DataError(f"{path}: cannot read {key} ({exc}); rerun with --resume") from None
            if out is None:
                out = np.empty((len(positions),) + part.shape[1:], dtype=part.dtype)
            out[start:start + len(part)] = part
            start += len(part)
        return np.zeros((0,), np.float32) if out is None else out

    def read(self, plan: ShardPlan, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The listed arrays of every shard, concatenated in position order."""
        keys = list(keys)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for s in range(plan.n_shards):
            path = self.shard_path(s)
            self._check_shard(path)
            try:
                with np.load(path) as z:
                    for k in keys:
                        parts[k].append(z[k])
            except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
                raise DataError(f"{path}: cannot read ({exc}); rerun with --resume") from None
        return {k: np.concatenate(v) for k, v in parts.items()}
