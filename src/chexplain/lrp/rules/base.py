"""The rule interface: ``prepare`` what does not depend on the relevance once per layer, ``apply``
it to any number of targets (shapes and conventions in :mod:`chexplain.lrp.rules`)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from ...errors import ChexplainError
from ..ops.linear import LinearOp
from .core import SignedState

Tensor = torch.Tensor


#: LRP-0's default stabiliser: only a guard against division by zero
LRP0_STABILIZER = 1e-12
EMPTY_MODES = ("literal", "conserve")


def check_empty(rule: str, empty: str) -> None:
    if empty not in EMPTY_MODES:
        raise ChexplainError(f"{rule}: empty must be 'literal' (Bach et al. 2015 Eq. 60) or 'conserve', got {empty!r}")


class Rule:
    """A relevance rule for linear layers."""

    name = "rule"
    #: whether the rule reads ``layer.bias`` (False: it takes the bias from z only)
    uses_bias = True
    #: whether ``prepare`` reads the layer's output z (False: a ReLU after the layer may then
    #: overwrite it, see :func:`chexplain.lrp.values.inplace_relus`)
    uses_output = True
    #: whether ``apply`` returns a tensor it allocated, which the engine may add into in place
    fresh_result = False

    def prepare(self, layer: LinearOp, x: Tensor, z: Tensor, nonnegative: bool = False) -> Any:
        """What does not depend on R (once per layer); ``nonnegative``: x ≥ 0 is known."""
        raise NotImplementedError  # pragma: no cover

    def apply(self, layer: LinearOp, x: Tensor, state: Any, R: Tensor) -> Tensor:
        """Relevance of the inputs (N, T, *in) for R (N, T, *out)."""
        raise NotImplementedError  # pragma: no cover

    def forward_prepare(self, layer: LinearOp, x: Tensor, nonnegative: bool = False) -> Optional[tuple[Tensor, Any]]:
        """(z, state) when the rule's modified forwards also give the layer's output z (saving
        its own forward), else None."""
        return None

    def __call__(self, layer: LinearOp, x: Tensor, z: Tensor, R: Tensor, nonnegative: bool = False) -> Tensor:
        return self.apply(layer, x, self.prepare(layer, x, z, nonnegative), R)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items() if not isinstance(v, Tensor))
        return f"{type(self).__name__}({params})"


class SignedRule(Rule):
    """A rule whose state is a :class:`~chexplain.lrp.rules.core.SignedState` (γ, αβ, z⁺): the
    relevance of the inputs is its :meth:`~chexplain.lrp.rules.core.SignedState.back`."""

    def apply(self, layer, x, state: SignedState, R):
        return state.back(layer, R)
