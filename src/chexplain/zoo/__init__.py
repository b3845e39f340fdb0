"""Any model for every command: :func:`load_model` turns a model spec (a chexplain checkpoint,
``xrv:WEIGHTS``, ``timm:NAME``, ``torchvision:NAME``, ``FILE.py:FACTORY``) into a
:class:`LoadedModel`: the module returning logits, its output names and its preprocessing."""

from .base import LoadedModel, ModelOptions
from .load import load_model

__all__ = ["load_model", "LoadedModel", "ModelOptions"]
