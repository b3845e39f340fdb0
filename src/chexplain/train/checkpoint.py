"""Atomic, resumable training checkpoints, loadable with ``torch.load(..., weights_only=True)``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts: the model's and the
optimiser's state, the step, the state of every random generator the loop draws from (torch's
global CPU and CUDA generators and any named :class:`torch.Generator`), and caller metadata.
It is written to a temporary file and renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import os
import pickle
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import DataError
from ..io import atomic_path


def rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot of torch's global CPU/CUDA generators and of ``generators`` (by name)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    state["generators"] = {name: g.get_state() for name, g in (generators or {}).items()}
    return state


def set_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore a snapshot taken by :func:`rng_state` (generators matched by name)."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    saved = state.get("generators", {})
    for name, g in (generators or {}).items():
        if name in saved:
            g.set_state(saved[name].cpu())


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    generators: Mapping[str, torch.Generator] | None = None,
    **extra: Any,
) -> Path:
    """Write a checkpoint atomically; ``extra`` entries (plain data and tensors) are stored too."""
    ckpt: dict[str, Any] = {"step": int(step), "rng": rng_state(generators), **extra}
    if model is not None:
        ckpt["model"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; one-line DataError when missing or corrupt."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a checkpoint file")
    if not path.exists():
        raise DataError(f"{path}: no such checkpoint")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file (a device, pipe or socket), not a checkpoint")
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol N": not a torch file
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc) or "Unsupported global" in str(exc):
            raise DataError(f"{path}: refusing to load: the file holds Python objects other than "
                            "tensors (weights_only)") from None
        raise DataError(f"{path}: not a readable PyTorch checkpoint (truncated?)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, KeyError, ValueError,
            TypeError, IndexError, AttributeError, struct.error) as exc:
        if isinstance(exc, RuntimeError) and "CUDA" in str(exc):
            raise DataError(f"{path}: holds CUDA tensors and CUDA is not available here") from None
        raise DataError(f"{path}: not a readable PyTorch checkpoint (truncated?)") from None
    except PermissionError:
        raise DataError(f"{path}: cannot read this checkpoint (permission denied)") from None
    except OSError:  # torch reports a damaged zip archive as an OSError (EINVAL)
        raise DataError(f"{path}: not a readable PyTorch checkpoint (truncated?)") from None
    if not isinstance(ckpt, dict):
        raise DataError(f"{path}: not a chexplain checkpoint (holds {type(ckpt).__name__})")
    return ckpt


def restore(
    ckpt: Mapping[str, Any],
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
) -> int:
    """Load model, optimiser and random states from ``ckpt``; returns the saved step."""
    if model is not None:
        model.load_state_dict(ckpt["model"])
    if optimizer is not None and "optimizer" in ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
    if "rng" in ckpt:
        set_rng_state(ckpt["rng"], generators)
    return int(ckpt.get("step", 0))
