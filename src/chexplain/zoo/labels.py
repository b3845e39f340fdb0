"""Labels matched to a model's outputs by name: a CheXpert-format data set's 14 observation
columns in the order of the model's outputs (case-insensitive; TorchXRayVision's names mapped
to CheXpert's). An output no column names is unlabelled: target 0, loss mask 0, empty masks."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from ..data.chexpert import OBSERVATIONS
from ..errors import ChexplainError
from ..models.densenet import XRV_TO_CHEXPERT

_LOWER = {o.lower(): o for o in OBSERVATIONS}
_XRV = {k.lower(): v for k, v in XRV_TO_CHEXPERT.items()}


def observation_of(name: str) -> str | None:
    """The CheXpert observation an output name stands for, or None."""
    key = str(name).strip().lower()
    return _LOWER.get(key) or _XRV.get(key)


def resolve_classes(requested: Sequence[str], names: Sequence[str]) -> list[str]:
    """Class names from the command line → the model's output names (case-insensitive)."""
    lower = {n.lower(): n for n in names}
    out = []
    for c in requested:
        if c.strip().lower() not in lower:
            raise ChexplainError(f"unknown class {c!r}; the model's outputs are {', '.join(names)}")
        out.append(lower[c.strip().lower()])
    return list(dict.fromkeys(out))


class OutputsView(Dataset):
    """A data set with 14 observation columns (``target``, ``mask``, ``finding_masks``), seen
    in the order of the model's outputs ``names``; ``labelled[k]``: output k has a column."""

    def __init__(self, base: Any, names: Sequence[str]) -> None:
        self.base = base
        self.names = list(names)
        self.columns = [None if (o := observation_of(n)) is None else OBSERVATIONS.index(o)
                        for n in self.names]
        self.labelled = [c is not None for c in self.columns]
        self.targets = self._take(torch.as_tensor(base.targets), 1).numpy()
        if hasattr(base, "loss_mask"):
            self.loss_mask = self._take(torch.as_tensor(base.loss_mask), 1).numpy()

    def _take(self, t: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """The 14 columns along ``dim`` in output order; zeros where unlabelled."""
        parts = [t.select(dim, c) if c is not None else torch.zeros_like(t.select(dim, 0))
                 for c in self.columns]
        return torch.stack(parts, dim)

    def __getattr__(self, name: str) -> Any:  # csv_path, frame, policy, with_masks ...
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.base[index])
        for key in ("target", "mask", "finding_masks"):
            if key in item:
                item[key] = self._take(item[key])
        return item


def in_output_order(dataset: Any, names: Sequence[str]) -> Any:
    """``dataset`` itself when the outputs are the 14 observations in order, else a view."""
    if list(names) == list(OBSERVATIONS):
        return dataset
    return OutputsView(dataset, names)


def check_labelled(classes: Sequence[str] | None, names: Sequence[str], dataset: Any,
                   what: str) -> None:
    """Every requested class needs a label column in ``dataset`` (one line otherwise)."""
    labelled = getattr(dataset, "labelled", None)
    if classes is None or labelled is None:
        return
    for c in classes:
        if not labelled[list(names).index(c)]:
            raise ChexplainError(f"--classes {c!r}: {what} has no labels for this output")
