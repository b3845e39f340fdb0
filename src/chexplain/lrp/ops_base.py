"""The base of every operation of a traced graph (see ``ops.py``)."""

from __future__ import annotations

from typing import Any, Optional

import torch


class Op:
    """Base class: ``forward(*inputs)`` on tensors of shape (N, ...)."""

    kind = "op"

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def to(self, dtype: torch.dtype, device: torch.device) -> "Op":
        return self

    def relevance(self, inputs: list[Any], out: torch.Tensor, R: torch.Tensor, ctx: Any) -> tuple[list, Optional[str]]:
        """The op's own relevance rule (see ``generic.py``): (relevance (N, T, *in) or None per
        input, the rule's name for the report or None). Ops with composite-chosen rules (linear
        layers, pooling, sums) are handled by the engine instead."""
        raise NotImplementedError(f"no relevance rule for {type(self).__name__}")


def _cast(t: Optional[torch.Tensor], dtype: torch.dtype, device: torch.device) -> Optional[torch.Tensor]:
    return None if t is None else t.to(dtype=dtype, device=device)


def _shallow_copy(obj: Any) -> Any:
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    return new
