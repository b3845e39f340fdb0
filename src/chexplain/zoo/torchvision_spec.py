"""``torchvision:NAME``: a torchvision classification model by name with ``--weights FILE`` (a
state dict, or a checkpoint holding one under ``model`` as torchvision's reference scripts
write). The stem and head are fitted to the file; the preprocessing is that of the model's
default weights in torchvision's metadata (crop size, mean, std), ImageNet's at 224 px
otherwise."""

from __future__ import annotations

from torch import nn

from ..data.images import IMAGENET, Normalization
from ..errors import ChexplainError
from .base import Built, ModelOptions
from .layers import build_from_file


def create(name: str, spec: str) -> nn.Module:
    from torchvision.models import get_model, list_models

    if name not in list_models():
        raise ChexplainError(f"{spec}: unknown torchvision model {name!r} (see "
                             "torchvision.models.list_models())")
    return get_model(name, weights=None)


def default_weights(name: str):
    """The model's default weights enum entry, or None."""
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        return None


def preprocessing(name: str) -> tuple[Normalization, int]:
    """Normalisation and input side from the default weights' transforms."""
    w = default_weights(name)
    if w is None:
        return IMAGENET, 224
    t = w.transforms()
    crop = getattr(t, "crop_size", [224])
    return (Normalization(tuple(t.mean), tuple(t.std)),
            int(crop[0] if isinstance(crop, (list, tuple)) else crop))


def build(name: str, options: ModelOptions, spec: str) -> Built:
    return build_from_file("torchvision", name, lambda: create(name, spec),
                           lambda _model: preprocessing(name), options, spec)
