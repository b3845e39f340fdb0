"""A chexplain checkpoint path (``best.pt`` / ``last.pt`` of ``chexplain chexpert train``): the
DenseNets of ``--arch``, and any architecture trained with ``--model SPEC`` (rebuilt from the
spec its metadata records, then its weights loaded; ``weights_only=True`` throughout)."""

from __future__ import annotations

from pathlib import Path

from ..data.images import get_normalization
from ..errors import DataError
from ..io import file_sha256
from .base import Built, ModelOptions, load_weights
from .exported import archive_kind, refuse
from .training import KIND, rebuild

DENSENET_KIND = "chexplain-chexpert-densenet"


def build(path: Path, options: ModelOptions, spec: str) -> Built:
    from ..models.densenet import load_trained
    from ..train.checkpoint import load_checkpoint

    kind = archive_kind(path)
    if kind is not None:
        raise refuse(path, kind)
    if options.weights is not None:
        raise DataError(f"--weights: a chexplain checkpoint ({path}) holds its own weights")
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta")
    found = meta.get("kind") if isinstance(meta, dict) else None
    if found == DENSENET_KIND:
        model, info = load_trained(path)
        norm = get_normalization(info["normalization"])
    elif found == KIND and isinstance(ckpt.get("model"), dict):
        model, norm = rebuild(meta, path)
        load_weights(model, ckpt["model"], meta["spec"], path)
        info = dict(meta)
        for key in ("epoch", "mean_auroc"):
            if key in ckpt:
                info[key] = ckpt[key]
        if "epoch" not in info and isinstance(ckpt.get("state"), dict):
            info["epoch"] = ckpt["state"].get("epoch")
    else:
        raise DataError(f"{path}: not a chexplain model checkpoint (written by `chexplain "
                        "chexpert train`); a state dict goes with --model "
                        f"timm:NAME|torchvision:NAME|xrv:WEIGHTS|FILE.py:FACTORY --weights {path}")
    return Built(model.eval(), list(info["observations"]), norm, int(info["image_size"]),
                 file_sha256(path), info)
