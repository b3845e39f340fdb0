"""``timm:NAME``: a timm model by name with ``--weights FILE`` (a state dict, or timm's training
checkpoint holding one under ``state_dict``). The stem and head are fitted to the file (its
input channels and number of outputs); the preprocessing is timm's pretrained config of the
model (input size, mean, std)."""

from __future__ import annotations

from torch import nn

from ..data.images import Normalization
from ..errors import ChexplainError
from .base import Built, ModelOptions
from .layers import build_from_file


def create(name: str, spec: str) -> nn.Module:
    import timm

    if not timm.is_model(name):
        raise ChexplainError(f"{spec}: unknown timm model {name!r} (see timm.list_models())")
    return timm.create_model(name, pretrained=False)


def preprocessing(model: nn.Module) -> tuple[Normalization, int]:
    """timm's data config of ``model``: normalisation (on the stem's channels) and input side."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    return Normalization(tuple(cfg["mean"]), tuple(cfg["std"])), int(cfg["input_size"][-1])


def build(name: str, options: ModelOptions, spec: str) -> Built:
    return build_from_file("timm", name, lambda: create(name, spec), preprocessing, options, spec)
