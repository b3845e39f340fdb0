"""Checks made before any work: output folders and files, and option values.

Every command calls :func:`prepare_out` on its output folder first, so that a file in the
way, a folder without write permission or a read-only disk is reported in one line before
minutes of training or explaining, not after. It also removes the stale temporaries that a
killed run of ours left behind (:data:`chexplain.io.TEMP_PATTERN`).
"""

from __future__ import annotations

import errno
import math
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

from .errors import ChexplainError, OutputError
from .io import STAGE_PATTERN, TEMP_PATTERN, write_error


def _file_in_the_way(path: Path) -> Path | None:
    """The first existing non-folder among ``path`` and its parents, if any."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def _broken_link(path: Path) -> str | None:
    """Why ``path`` or one of its parents is a symbolic link that leads nowhere, if one is."""
    for p in (path, *path.parents):
        if not p.is_symlink():
            continue
        try:
            p.stat()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return f"{p} is a symbolic link loop"
            if exc.errno == errno.ENOENT:
                return f"{p} is a symbolic link to {os.readlink(p)}, which does not exist"
            return f"{p} is a symbolic link that cannot be followed ({exc.strerror})"
    return None


def prepare_out(out: str | os.PathLike, option: str = "--out", clean: bool = True) -> Path:
    """Create the output folder ``out``, prove it writable, remove our stale temporaries.

    Raises :class:`OutputError` naming ``option`` when ``out`` is empty, is a file, lies
    under a file, is a dangling or looping symbolic link, or cannot be written (permission,
    read-only or full disk).
    """
    if not str(out).strip():
        raise OutputError(f"{option} is empty; name an output folder (\".\" for this one)")
    out = Path(out)
    broken = _broken_link(out)
    if broken is not None:
        raise OutputError(f"{option} {out}: {broken}")
    blocker = _file_in_the_way(out)
    if blocker is not None:
        where = "is a file" if blocker == out else f"lies under the file {blocker}"
        raise OutputError(f"{option} {out} {where}; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".chexplain-probe-", dir=out)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{option}: {write_error(out, exc)}") from None
    if clean:
        remove_stale_temporaries(out)
    return out


def check_layout(out: str | os.PathLike, folders: Iterable[str] = (), files: Iterable[str] = (),
                 option: str = "--out") -> None:
    """Before any work: each of ``folders`` under ``out`` is a folder or absent, and each of
    ``files`` is not a folder (a result is not found blocked after minutes of work)."""
    out = Path(out)
    for name in folders:
        p = out / name
        if p.exists() and not p.is_dir() or p.is_symlink() and not p.exists():
            raise OutputError(f"{option}: {p} is in the way of the output folder {name}/; "
                              "move it away or choose another --out")
    for name in files:
        p = out / name
        if p.is_dir():
            raise OutputError(f"{option}: {p} is a folder in the way of the output file {name}; "
                              "move it away or choose another --out")


def remove_stale_temporaries(folder: str | os.PathLike, depth: int = 2) -> list[Path]:
    """Delete ``.<stem>.<random>.tmp<suffix>`` files (ours, left by a killed run) in ``folder``
    and its subfolders down to ``depth`` levels (explain's ``<image>/<method>/``), and the
    staging folders of :func:`chexplain.io.result_set`; returns what was removed."""
    import shutil

    pattern, stage = re.compile(TEMP_PATTERN), re.compile(STAGE_PATTERN)
    removed = []
    for name in os.listdir(folder):
        if stage.match(name) and (Path(folder) / name).is_dir():
            shutil.rmtree(Path(folder) / name, ignore_errors=True)
            removed.append(Path(folder) / name)
    top = len(Path(folder).parts)
    for dirpath, dirs, files in os.walk(folder):
        if len(Path(dirpath).parts) - top >= depth:
            dirs[:] = []
        for name in files:
            if name.startswith(".") and pattern.match(name):
                p = Path(dirpath) / name
                try:
                    p.unlink()
                    removed.append(p)
                except OSError:
                    pass
    return removed


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """An output file's folder is created and writable, and ``path`` is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name")
    prepare_out(path.parent if str(path.parent) else Path("."), option, clean=False)
    return path


def require_empty(out: str | os.PathLike, overwrite: bool, keep: Iterable[str] = ()) -> Path:
    """Refuse a non-empty ``out`` unless ``overwrite`` (entries named in ``keep`` ignored)."""
    out = Path(out)
    if out.is_dir() and not overwrite:
        found = sorted(p.name for p in out.iterdir() if p.name not in set(keep))
        if found:
            raise OutputError(f"--out {out} is not empty ({', '.join(found[:3])}"
                              f"{' ...' if len(found) > 3 else ''}); pass --overwrite to replace "
                              "its contents or choose an empty folder")
    return out


# ------------------------------------------------------------------------------ options

def positive_int(value: int | None, option: str, minimum: int = 1) -> None:
    """``value`` (when given) is an integer >= ``minimum``."""
    if value is not None and int(value) < minimum:
        raise ChexplainError(f"{option} {value} must be at least {minimum}")


def probability(value: float, option: str) -> None:
    """``value`` lies strictly between 0 and 1."""
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ChexplainError(f"{option} {value} must be a probability between 0 and 1")


def finite(value: float | None, option: str, nonnegative: bool = False) -> None:
    """``value`` (when given) is finite (and >= 0 with ``nonnegative``)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not math.isfinite(value) or (nonnegative and value < 0):
        need = "a finite number >= 0" if nonnegative else "a finite number"
        raise ChexplainError(f"{option}={value} must be {need}")


def check_param_types(method: str, func: Any, params: dict[str, Any]) -> None:
    """Each of ``params`` has the type of ``func``'s default for it (a float default: a finite
    real number, not a bool or text; a bool default: a bool; a str default: a str); one-line
    :class:`ChexplainError` naming the parameter otherwise. Parameters ``func`` does not take
    and those without a typed default (``low``, ``high``, ``layer``) are left to ``func``."""
    import inspect
    import numbers

    sig = inspect.signature(func).parameters
    for name, value in params.items():
        if name not in sig:
            continue
        default = sig[name].default
        if isinstance(default, bool):
            ok, need = isinstance(value, bool), "True or False"
        elif isinstance(default, (int, float)):
            if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # 0-d tensor or array
                value = value.item()
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
                math.isfinite(float(value))
            need = "a finite number"
        elif isinstance(default, str):
            ok, need = isinstance(value, str), "a string"
        else:
            continue
        if not ok:
            raise ChexplainError(f"{method}: parameter {name}={value!r} ({type(value).__name__}) "
                                 f"must be {need}")


#: Images smaller than this (shorter side, pixels) or more elongated than :data:`MAX_ASPECT`
#: are upsampled into nonsense; they are explained with a warning.
MIN_SIDE, MAX_ASPECT = 32, 4.0


def warn_odd_size(path: str | os.PathLike, height: int, width: int) -> None:
    """Warn when an image is tiny or strongly elongated (it is resized to the model's input)."""
    short, long = min(height, width), max(height, width)
    why = []
    if short < MIN_SIDE:
        why.append(f"is below {MIN_SIDE} px (upsampled to the model's input, its explanation "
                   "means little)")
    if long / short > MAX_ASPECT:
        why.append(f"has the aspect {long / short:.1f}:1 (centre-cropped to a square, most of it "
                   "is not seen)")
    if why:
        warnings.warn(f"{path}: {width}x{height} pixels {' and '.join(why)}", stacklevel=2)


def check_batch(x: Any, method: str) -> Any:
    """``x`` as a non-empty floating-point batch (N, C, *spatial) of finite values, detached;
    one-line :class:`~chexplain.errors.InputError` naming what ``method`` needs otherwise."""
    import torch

    from .errors import InputError

    if not isinstance(x, torch.Tensor):
        raise InputError(f"the input must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    if x.ndim < 3 or x.shape[0] == 0:
        raise InputError(f"the input has shape {tuple(x.shape)}; {method} needs a non-empty batch "
                         "(N, C, *spatial)")
    if not x.is_floating_point():
        raise InputError(f"the input must be a floating-point tensor, got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise InputError("the input contains NaN or infinite values")
    return x.detach()
