"""Which outputs to explain: shared by LRP and the Grad-CAM family.

A target specification is resolved against the logits of one forward pass into an index
tensor of shape (N, T): row n lists the T output classes explained for sample n.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

from .errors import TargetError

TargetSpec = Union[int, Sequence[int], torch.Tensor, str, None]


@dataclass(frozen=True)
class Targets:
    """Resolved targets.

    index: (N, T) long tensor of output classes.
    squeeze: True when the caller asked for one class per sample (int or per-sample list);
        the explanation then drops its T axis and has the input's shape.
    """

    index: torch.Tensor
    squeeze: bool

    @property
    def count(self) -> int:
        return int(self.index.shape[1])


def resolve_targets(
    logits: torch.Tensor,
    target: TargetSpec = None,
    classes: Sequence[int] | None = None,
) -> Targets:
    """Turn ``target`` / ``classes`` into a (N, T) index tensor for these logits.

    target: an int (one class for all samples), a per-sample list or 1-D tensor of length N,
        ``"all"`` (every output), ``"topk:K"`` (the K largest logits of each sample, in
        decreasing order) or None (the largest logit of each sample).
    classes: a list of classes explained for every sample (result axis T); exclusive with
        ``target``.
    """
    if logits.ndim != 2:
        raise TargetError(
            f"the model's output has shape {tuple(logits.shape)}; explanations need logits of "
            "shape (N, classes)"
        )
    n, c = logits.shape
    device = logits.device
    if classes is not None:
        if target is not None:
            raise TargetError("give either target= or classes=, not both")
        if isinstance(classes, (list, tuple)) and len(classes) == 0:
            raise TargetError("classes= is empty; give at least one class index")
        idx = _as_long(classes, "classes")
        if idx.ndim != 1 or idx.numel() == 0:
            raise TargetError("classes= must be a non-empty list of class indices")
        _check_range(idx, c)
        return Targets(idx.to(device).unsqueeze(0).expand(n, -1).contiguous(), squeeze=False)
    if target is None:
        return Targets(logits.argmax(dim=1, keepdim=True), squeeze=True)
    if isinstance(target, str):
        spec = target.strip().lower()
        if spec == "all":
            return Targets(torch.arange(c, device=device).unsqueeze(0).expand(n, -1).contiguous(), False)
        if spec.startswith("topk:"):
            try:
                k = int(spec[5:])
            except ValueError:
                raise TargetError(f"cannot read K in target {target!r}; write 'topk:3'") from None
            if not 1 <= k <= c:
                raise TargetError(f"target {target!r}: K must be between 1 and {c} (the model's outputs)")
            return Targets(logits.topk(k, dim=1).indices, squeeze=False)
        raise TargetError(f"unknown target {target!r}; use an int, a list, 'all' or 'topk:K'")
    if isinstance(target, bool):
        raise TargetError(f"target {target!r} is not a class index")
    if isinstance(target, int):
        idx = torch.full((n, 1), target, dtype=torch.long, device=device)
        _check_range(idx, c)
        return Targets(idx, squeeze=True)
    idx = _as_long(target, "target")
    if idx.ndim == 0:
        idx = idx.expand(n)
    if idx.ndim != 1 or idx.numel() != n:
        raise TargetError(
            f"a per-sample target needs {n} entries (one per input), got shape {tuple(idx.shape)}; "
            "use classes=[...] to explain several classes of every sample"
        )
    _check_range(idx, c)
    return Targets(idx.to(device).unsqueeze(1), squeeze=True)


def _as_long(value: object, name: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TargetError(f"{name}={value!r} is not a list of class indices") from None
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TargetError(f"{name} must hold integer class indices, got dtype {t.dtype}")
    return t.long()


def _check_range(idx: torch.Tensor, c: int) -> None:
    bad = idx[(idx < 0) | (idx >= c)]
    if bad.numel():
        raise TargetError(f"target class {int(bad[0])} is out of range: the model has {c} outputs (0..{c - 1})")
