"""The timm zoo of ``benchmarks/coverage.py --zoo timm``: one representative per model-entrypoint
module of timm (its smallest variant under ``--max-params``), found with ``timm.list_modules`` /
``timm.list_models(module=...)`` and parameter counts of models built on the meta device (no
weights, no download), then checked like the families: random weights, float64.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn

NUM_CLASSES = 5


@dataclass
class ZooModel:
    """module: timm's entrypoint module; name: the chosen model; params: its parameter count."""

    module: str
    name: str
    params: int


def _meta_params(name: str) -> int | None:
    import timm
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES)
    except Exception:  # noqa: BLE001 - a model timm itself cannot build on the meta device
        return None
    return sum(p.numel() for p in model.parameters())


def select(max_params: float = 30e6, modules: list[str] | None = None) -> list[ZooModel]:
    """The smallest model of every timm entrypoint module with fewer than ``max_params``."""
    import timm
    chosen = []
    for module in modules or timm.list_modules():
        best = None
        for name in timm.list_models(module=module):
            n = _meta_params(name)
            if n is not None and n < max_params and (best is None or n < best[1]):
                best = (name, n)
        if best is not None:
            chosen.append(ZooModel(module, best[0], best[1]))
    return chosen


def build(name: str, size: int = 64, seed: int = 0) -> tuple[nn.Module, int]:
    """(the model with random weights (pretrained=False), its input side): ``size`` px (built with
    ``img_size=size`` where the model takes it), else the size of its pretrained config where the
    model does not run at ``size`` (fixed sizes, window or block sizes that must divide it)."""
    import timm
    cfg = timm.models.get_pretrained_cfg(name)
    own = int(cfg.input_size[-1]) if cfg is not None else 224
    attempts = [({"img_size": size}, size), ({}, size), ({}, own)]
    for kwargs, side in attempts:
        torch.manual_seed(seed)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = _nonzero(timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES, **kwargs).eval())
                with torch.no_grad():
                    model(torch.zeros(1, 3, side, side))
            return model, side
        except Exception:  # noqa: BLE001 - next attempt; the last one raises
            if (kwargs, side) == attempts[-1]:
                raise
    raise AssertionError("unreachable")


def _nonzero(model: nn.Module) -> nn.Module:
    """Zero-initialised dense and conv weights (gMLP's head, residual branches) drawn at random:
    with them every logit, and every relevance, would be zero."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and not m.weight.any():
                m.weight.normal_(0.0, 0.02)
    return model
