"""Fitting a library model to a state dict: its stem to the file's input channels and its
classification head to the file's number of outputs (a new head where they differ)."""

from __future__ import annotations

from typing import Callable

from torch import nn


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The model's first 2-D convolution (its stem), by registration order."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    return None


def set_stem_channels(model: nn.Module, channels: int) -> bool:
    """Replace the stem's convolution by one with ``channels`` inputs (fresh weights); True if
    it changed."""
    found = first_conv(model)
    if found is None or found[1].in_channels == channels or found[1].groups != 1:
        return False
    name, old = found
    new = nn.Conv2d(channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    old.dilation, 1,
                    old.bias is not None, old.padding_mode)
    model.set_submodule(name, new)
    return True


def head_name(model: nn.Module) -> str | None:
    """The name of the model's last Linear layer (its classifier head)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    return last


def set_head_outputs(model: nn.Module, outputs: int, name: str | None = None) -> bool:
    """Replace the head Linear ``name`` (default: the last Linear) by a fresh one with
    ``outputs`` outputs; True if it changed."""
    name = name or head_name(model)
    if name is None:
        return False
    old = model.get_submodule(name)
    if old.out_features == outputs:
        return False
    model.set_submodule(name, nn.Linear(old.in_features, outputs, bias=old.bias is not None))
    return True


def fit_to_state(model: nn.Module, state: dict) -> None:
    """Stem channels and head outputs as the state dict ``state`` has them."""
    stem = first_conv(model)
    if stem is not None and f"{stem[0]}.weight" in state:
        w = state[f"{stem[0]}.weight"]
        if w.ndim == 4 and stem[1].groups == 1:
            set_stem_channels(model, int(w.shape[1]))
    for name, module in list(model.named_modules()):
        w = state.get(f"{name}.weight")
        if isinstance(module, nn.Linear) and w is not None and w.ndim == 2 \
                and w.shape[1] == module.in_features and w.shape[0] != module.out_features:
            set_head_outputs(model, int(w.shape[0]), name)


def build_from_file(library: str, name: str, create: Callable[[], nn.Module],
                    preprocessing: Callable[[nn.Module], tuple], options, spec: str):
    """``LIBRARY:NAME --weights FILE``: the library's model built by ``create``, its stem and head
    fitted to the file, the file's tensors loaded; ``preprocessing(model)`` gives its
    (normalisation, input side). Returns a :class:`~chexplain.zoo.base.Built`."""
    from ..errors import ChexplainError
    from ..io import file_sha256
    from .base import Built, load_weights, read_state_dict, weights_file

    if options.weights is None:
        raise ChexplainError(f"{spec}: give the model's weights with --weights FILE (a "
                             f"{library} model by name alone has random weights)")
    model = create()
    norm, size = preprocessing(model)
    path = weights_file(options.weights, spec)
    state = read_state_dict(path, spec)
    fit_to_state(model, state)
    load_weights(model, state, spec, path)
    return Built(model, None, norm, size, file_sha256(path), {"arch": name, "init": f"file ({path})"})
