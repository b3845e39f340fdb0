"""Building blocks of the CheXpert training loop: masked BCE, mixed precision, batched prediction."""

from __future__ import annotations

import contextlib
import math
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import ChexplainError

AMP_MODES = ("auto", "off", "bf16", "fp16")


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)`` (``auto``: CUDA when available, else CPU), with a one-line error
    when it is unknown or unavailable."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ChexplainError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ChexplainError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ChexplainError("device 'mps' requested but it is not available here")
    return device


def cosine_lr(base: float, step: int, total: int, final: float) -> float:
    """Learning rate at ``step``: cosine decay from ``base`` to ``final * base`` over ``total``."""
    return base * (final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))


def masked_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BCE-with-logits over the entries where ``mask`` is 1 (U-Ignore's uncertain labels have 0).

    Returns (mean over the counted entries, their sum, their count); computed in float32 even
    when ``logits`` come from an autocast region.
    """
    per = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    mask = mask.float()
    total, count = (per * mask).sum(), mask.sum()
    return total / count.clamp_min(1.0), total.detach(), count.detach()


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``amp``: ``auto`` is bf16 on GPUs that support it, fp16 on older GPUs
    (with a GradScaler) and off on CPU; ``bf16`` also works on CPU; ``fp16`` needs CUDA."""
    amp = str(amp).lower()
    if amp not in AMP_MODES:
        raise ChexplainError(f"unknown --amp {amp!r}; choose from {', '.join(AMP_MODES)}")
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16" and device.type != "cuda":
        raise ChexplainError("--amp fp16 needs a CUDA device; use --amp bf16 on CPU")
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``'s type; a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(batch: dict, device: torch.device, channels_last: bool
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image, target, mask) of a collated batch on ``device`` (images channels-last if asked)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    nb = device.type == "cuda"
    x = batch["image"].to(device, non_blocking=nb, memory_format=fmt)
    return x, batch["target"].to(device, non_blocking=nb), batch["mask"].to(device, non_blocking=nb)


@torch.no_grad()
def predict(model: torch.nn.Module, loader: Iterable[dict], device: torch.device,
            dtype: torch.dtype | None = None, channels_last: bool = False,
            progress: bool = False, desc: str = "predict",
            num_classes: int = 14) -> dict[str, np.ndarray | float]:
    """Logits of ``model`` over ``loader`` with the targets, masks and dataset indices.

    Returns ``{"index", "logits", "target", "mask"}`` (NumPy, float32 for the last three) and
    ``loss_sum`` / ``loss_count`` of the masked BCE (0 / 0 when the logits and targets differ
    in shape, as for a model with other outputs).
    """
    was_training = model.training
    model.eval()
    idx, logits, targets, masks = [], [], [], []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    try:
        for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False,
                          dynamic_ncols=True):
            x, t, m = to_device(batch, device, channels_last)
            with autocast(device, dtype):
                out = model(x)
            if out.shape == t.shape:  # a model with other outputs (xrv) has no loss here
                _, s, c = masked_bce(out, t, m)
                loss_sum += s
                count += c
            idx.append(torch.as_tensor(batch["index"]).cpu())
            logits.append(out.float().cpu())
            targets.append(t.cpu())
            masks.append(m.cpu())
    finally:
        model.train(was_training)

    def cat(parts: list[torch.Tensor], dt) -> np.ndarray:
        if not parts:  # a rank whose shard is empty
            return np.zeros((0, num_classes) if dt is np.float32 else 0, dtype=dt)
        return torch.cat(parts).numpy().astype(dt, copy=False)

    return {"index": cat(idx, np.int64), "logits": cat(logits, np.float32),
            "target": cat(targets, np.float32), "mask": cat(masks, np.float32),
            "loss_sum": float(loss_sum), "loss_count": float(count)}
