"""Atomic output: results are written to a temporary file, then renamed into place.

A crash or an exception never leaves a half-written PNG, NPY, JSON, CSV or checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import OutputError

#: The temporaries :func:`atomic_path` makes: ``.<stem>.<random>.tmp<suffix>`` (the random
#: part from :func:`tempfile.mkstemp`); :func:`chexplain.validate.prepare_out` removes stale ones.
TEMP_PATTERN = r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$"


def slug(name: str) -> str:
    """``name`` as a file-name part: lower case, runs of anything but letters and digits as one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_") or "x"


def write_error(path: str | os.PathLike, exc: OSError) -> OutputError:
    """A one-line error for an OSError while writing ``path`` (full disk, permission ...)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"no space left on device while writing {path}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"cannot write {path}: permission denied (or a read-only file system)")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return OutputError(f"cannot write {path}: a file is in the way of a folder (or a folder "
                           "of a file)")
    return OutputError(f"cannot write {path}: {exc.strerror or type(exc).__name__}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary name keeps ``path``'s suffix so that writers choosing a format by suffix
    (Pillow, matplotlib, numpy) behave as for the final name.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; results get the usual mode
        os.replace(tmp_path, path)
    except OSError as exc:  # a full disk, a vanished folder ...: earlier files stay intact
        tmp_path.unlink(missing_ok=True)
        raise write_error(path, exc) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Ctrl-C inside the block is held back and raised when it ends (main thread only)."""
    got: list[int] = []
    try:
        old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    except ValueError:  # not the main thread: signals are not delivered here anyway
        old = None
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    if got:
        raise KeyboardInterrupt


#: The staging folders of :func:`result_set`: ``.results.<random>.tmp``.
STAGE_PATTERN = r"^\.results\.[a-z0-9_]{8}\.tmp$"


@contextlib.contextmanager
def result_set(out: str | os.PathLike, names: Sequence[str]) -> Iterator[Path]:
    """Write a set of result files together: yields a staging folder inside ``out``; on
    success every file of ``names`` found there replaces its namesake in ``out`` and those
    not written are removed from ``out``, with Ctrl-C held back meanwhile, so that ``out``
    never mixes an older run's results with this one's. On an exception (Ctrl-C included)
    ``out`` keeps the older set and the exception propagates."""
    out = Path(out)
    try:
        stage = Path(tempfile.mkdtemp(prefix=".results.", suffix=".tmp", dir=out))
    except OSError as exc:
        raise write_error(out, exc) from None
    try:
        yield stage
        with _sigint_deferred():
            for name in names:
                src = stage / name
                try:
                    if src.exists():
                        os.replace(src, out / name)
                    else:
                        (out / name).unlink(missing_ok=True)
                except OSError as exc:
                    raise write_error(out / name, exc) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


#: Read once: setting the umask to read it is process-wide, not safe while other threads create files.
_UMASK = _read_umask()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_csv(path: str | os.PathLike, rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None) -> Path:
    """A CSV (the csv module's quoting) with an optional header row."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            if header is not None:
                w.writerow(header)
            w.writerows(rows)
    return Path(path)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array))
    return Path(path)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
