"""Parameter checks shared by the attribution methods: one-line errors naming the parameter,
raised before any computation."""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import torch

from ..errors import ChexplainError


def positive_int(method: str, name: str, value: Any) -> int:
    """``value`` as an int >= 1, else a :class:`ChexplainError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ChexplainError(f"{method}: parameter {name}={value!r} must be a positive integer")
    return int(value)


def real(method: str, name: str, value: Any, minimum: float | None = None,
         strict: bool = False) -> float:
    """``value`` as a finite float (>= or > ``minimum``), else a one-line error naming ``name``."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ChexplainError(f"{method}: parameter {name}={value!r} must be a finite number")
    v = float(value)
    if minimum is not None and (v <= minimum if strict else v < minimum):
        bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
        raise ChexplainError(f"{method}: parameter {name}={value!r} must be {bound}")
    return v


def choice(method: str, name: str, value: Any, options: Sequence[str]) -> str:
    """``value`` if it is one of ``options``, else a one-line error listing them."""
    if not isinstance(value, str) or value not in options:
        raise ChexplainError(f"{method}: unknown {name} {value!r}; use one of {', '.join(options)}")
    return value


def unknown(method: str, params: dict[str, Any], accepted: Sequence[str]) -> None:
    """Refuse parameters the method does not take."""
    extra = sorted(set(params) - set(accepted))
    if extra:
        raise ChexplainError(f"unknown parameter(s) {', '.join(extra)} for {method!r}; it takes "
                             f"{', '.join(accepted)}")


def check_input(x: Any) -> torch.Tensor:
    """A non-empty floating-point batch (N, C, *spatial) of finite values, detached."""
    from ..validate import check_batch

    return check_batch(x, "attribution")
