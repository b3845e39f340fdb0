"""Models whose forward returns a tuple, a dict or an object with ``.logits``: a wrapper whose
forward returns the logits tensor alone, written so that ``torch.fx`` traces through it (the
selection is a plain index, key or attribute on the traced output), for LRP and Grad-CAM alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ChexplainError


@dataclass(frozen=True)
class OutputChoice:
    """How the logits are taken from the model's output: ``kind`` attr | key | index."""

    kind: str
    key: str | int
    note: str | None = None  #: said to the user when the choice was a guess

    def take(self, out: Any) -> Any:
        if self.kind == "attr":
            return getattr(out, str(self.key))
        return out[self.key]

    def text(self) -> str:
        return f".{self.key}" if self.kind == "attr" else f"[{self.key!r}]"


class SelectOutput(nn.Module):
    """``forward(x) = choice.take(model(x))``: the logits of a model with a structured output."""

    def __init__(self, model: nn.Module, choice: OutputChoice) -> None:
        super().__init__()
        self.model = model
        self.choice = choice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.choice.take(self.model(x))


def choose_output(out: Any, wanted: str | int | None, spec: str) -> OutputChoice | None:
    """The logits among ``out`` (one forward's result): None when ``out`` is a tensor; with
    ``wanted`` (``--output KEY|INDEX``) that element; else ``.logits``, key ``"logits"`` or
    element 0 of a tuple (with a note)."""
    if isinstance(out, torch.Tensor):
        if wanted is not None:
            raise ChexplainError(f"{spec}: --output {wanted}: the model returns one tensor")
        return None
    if isinstance(out, (tuple, list)):
        if wanted is None:
            choice = OutputChoice("index", 0, f"{spec} returns a {type(out).__name__} of "
                                  f"{len(out)}; explaining element 0 (--output INDEX to choose)")
        else:
            try:
                index = int(wanted)
            except ValueError:
                raise ChexplainError(f"{spec}: --output {wanted!r}: the model returns a "
                                     f"{type(out).__name__}; give an index") from None
            if not -len(out) <= index < len(out):
                raise ChexplainError(f"{spec}: --output {index}: the model returns "
                                     f"{len(out)} elements")
            choice = OutputChoice("index", index)
    elif isinstance(out, dict):
        keys = [str(k) for k in out]
        key = "logits" if wanted is None else str(wanted)
        if key not in out:
            raise ChexplainError(f"{spec}: the model returns a dict with keys {', '.join(keys)}; "
                                 + ("none is 'logits': choose one with --output KEY" if wanted is None
                                    else f"--output {key!r} is not among them"))
        choice = OutputChoice("key", key)
    elif wanted is not None or hasattr(out, "logits"):
        key = "logits" if wanted is None else str(wanted)
        if not isinstance(getattr(out, key, None), torch.Tensor):
            raise ChexplainError(f"{spec}: --output {key}: the model's {type(out).__name__} output "
                                 "has no such tensor attribute")
        choice = OutputChoice("attr", key)
    else:
        raise ChexplainError(f"{spec}: the model returns a {type(out).__name__}, not a tensor, "
                             "a tuple, a dict or an object with .logits")
    picked = choice.take(out)
    if not isinstance(picked, torch.Tensor):
        raise ChexplainError(f"{spec}: output {choice.text()} is a {type(picked).__name__}, not the "
                             "logits tensor; choose another with --output")
    return choice
