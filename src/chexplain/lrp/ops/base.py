"""The base of every operation of a traced graph (see :mod:`chexplain.lrp.ops`)."""

from __future__ import annotations

from typing import Any, Optional

import torch


class Op:
    """Base class: ``forward(*inputs)`` on tensors of shape (N, ...)."""

    kind = "op"
    #: whether the composite chooses this op's rule (passed to :meth:`relevance` as ``ctx.rule``)
    takes_rule = False

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def to(self, dtype: torch.dtype, device: torch.device) -> "Op":
        return self

    def relevance(self, inputs: list[Any], out: torch.Tensor, R: torch.Tensor, ctx: Any) -> tuple[list, Optional[str]]:
        """The op's relevance rule: (relevance (N, T, *in) or None per input, the rule's name for
        the report or None). ``ctx``: :class:`chexplain.lrp.ops.generic.RelevanceContext` (this
        node's state across target chunks, the stabiliser, the composite and, for the ops whose
        rule it chooses, that rule)."""
        raise NotImplementedError(f"no relevance rule for {type(self).__name__}")


def _cast(t: Optional[torch.Tensor], dtype: torch.dtype, device: torch.device) -> Optional[torch.Tensor]:
    return None if t is None else t.to(dtype=dtype, device=device)


def _shallow_copy(obj: Any) -> Any:
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    return new
