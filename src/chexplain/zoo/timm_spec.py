"""``timm:NAME``: a timm model by name with ``--weights FILE`` (a state dict, or timm's training
checkpoint holding one under ``state_dict``). The stem and head are fitted to the file (its
input channels and number of outputs); the preprocessing is timm's pretrained config of the
model (input size, mean, std)."""

from __future__ import annotations

from torch import nn

from ..data.images import Normalization
from ..errors import ChexplainError
from ..io import file_sha256
from .base import Built, ModelOptions, load_weights, read_state_dict, weights_file
from .layers import fit_to_state


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
    if options.weights is None:
        raise ChexplainError(f"{spec}: give the model's weights with --weights FILE (a timm "
                             "model by name alone has random weights)")
    model = create(name, spec)
    norm, size = preprocessing(model)
    path = weights_file(options.weights, spec)
    state = read_state_dict(path, spec)
    fit_to_state(model, state)
    load_weights(model, state, spec, path)
    return Built(model, None, norm, size, file_sha256(path), {"arch": name, "init": f"file ({path})"})
