"""A model of any library to train with ``chexplain chexpert train --model SPEC``: the library's
architecture with a new ``num_classes``-output head, initialised from ``--weights FILE``, the
library's local cache (``auto``) or at random, and what its checkpoints record to rebuild it
(:func:`trained_meta`, :func:`rebuild`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from ..data.images import Normalization
from ..errors import ChexplainError, DataError
from .base import load_weights, read_state_dict, with_channels
from .layers import first_conv, fit_to_state, head_name, set_head_outputs, set_stem_channels

KIND = "chexplain-chexpert-model"
TRAINABLE = ("torchvision", "timm", "xrv")


@dataclass
class Trainable:
    """A model to train: its module (logits out), its preprocessing and how it was initialised."""

    module: nn.Module
    spec: str
    normalization: Normalization
    image_size: int
    init: str


def _split(spec: str) -> tuple[str, str]:
    form, sep, name = spec.partition(":")
    if not sep or form not in TRAINABLE or not name:
        raise ChexplainError(f"--model {spec!r}: training takes torchvision:NAME, timm:NAME or "
                             "xrv:WEIGHTS (or --arch densenet121|tiny)")
    return form, name


def _torchvision_cache(name: str) -> Path | None:
    import torch

    from .torchvision_spec import default_weights

    w = default_weights(name)
    return None if w is None else Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)


def _timm_cache(model: nn.Module) -> Path | None:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    repo = cfg.get("hf_hub_id")
    if not repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo.split("@")[0], filename)
        if isinstance(found, str):
            return Path(found)
    return None


def _load_file(model: nn.Module, path: Path, spec: str) -> None:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = read_state_dict(path, spec)
    fit_to_state(model, state)
    load_weights(model, state, spec, path)


def trainable(spec: str, num_classes: int, weights: str | os.PathLike | None = "auto"
              ) -> Trainable:
    """``spec``'s architecture with a fresh ``num_classes``-output head (see module doc)."""
    form, name = _split(spec)
    choice = "none" if weights is None else str(weights)
    if choice.lower() == "imagenet":
        raise ChexplainError(f"--weights imagenet goes with --arch densenet121; with --model "
                             f"{spec} give auto, none or a weights file")
    if form == "xrv":
        return _xrv(name, num_classes, choice, spec)
    if form == "timm":
        from .timm_spec import create, preprocessing

        model = create(name, spec)
        norm, size = preprocessing(model)
        cached = _timm_cache(model) if choice.lower() == "auto" else None
    else:
        from .torchvision_spec import create, preprocessing

        model = create(name, spec)
        norm, size = preprocessing(name)
        cached = _torchvision_cache(name) if choice.lower() == "auto" else None
    if choice.lower() in ("none", "random"):
        init = "random"
    elif choice.lower() == "auto":
        if cached is not None and cached.is_file():
            _load_file(model, cached, spec)
            init = f"pretrained ({cached})"
        else:
            init = f"random (no pretrained weights in the library's cache{f' at {cached}' if cached else ''})"
    else:
        path = Path(choice).expanduser()
        if not path.is_file():
            raise DataError(f"--weights {choice}: no such file")
        _load_file(model, path, spec)
        init = f"file ({path})"
    if head_name(model) is None:
        raise ChexplainError(f"{spec}: no Linear classifier head to replace")
    set_head_outputs(model, num_classes)
    stem = first_conv(model)
    if stem is not None and stem[1].in_channels != norm.channels:
        norm = with_channels(norm, stem[1].in_channels)
    return Trainable(model, spec, norm, size, init)


def _xrv(name: str, num_classes: int, choice: str, spec: str) -> Trainable:
    from ..data.images import XRV
    from .xrv import cache_file, library_model, weights_info

    info = weights_info(name)
    if choice.lower() == "auto" and not cache_file(name).is_file():
        choice, init = "none", f"random (no weights in TorchXRayVision's cache at {cache_file(name)})"
    else:
        init = None
    weights = None if choice.lower() == "auto" else choice
    model, _, path = library_model(name, weights, spec, download=False)
    init = init or ("random" if path is None else f"pretrained ({path})")
    if name.startswith("resnet"):
        set_head_outputs(model, num_classes, "fc")
        module = model
    else:
        from ..data.chexpert import OBSERVATIONS
        from ..models.densenet import XRVLogits

        model.pathologies = [f"output {k}" for k in range(model.classifier.out_features)]
        module = XRVLogits(model)
        set_head_outputs(module, num_classes, "classifier")
        module.pathologies = list(OBSERVATIONS[:num_classes]) if num_classes <= len(OBSERVATIONS) \
            else [f"output {k}" for k in range(num_classes)]
    size = int(info.get("input_resolution", 512 if name.startswith("resnet") else 224))
    return Trainable(module, spec, XRV, size, init)


def trained_meta(t: Trainable, observations: Sequence[str], image_size: int, init: str
                 ) -> dict[str, Any]:
    """What :func:`rebuild` needs, stored in the checkpoints of ``chexplain chexpert train``."""
    return {"kind": KIND, "arch": t.spec, "spec": t.spec, "num_classes": len(observations),
            "observations": list(observations), "image_size": int(image_size),
            "mean": list(t.normalization.mean), "std": list(t.normalization.std),
            "normalization": "custom", "in_channels": t.normalization.channels, "init": init}


def rebuild(meta: dict[str, Any], where: Any) -> tuple[nn.Module, Normalization]:
    """The architecture a checkpoint of :data:`KIND` was trained with (random weights), and its
    normalisation; ``where`` names the file in errors."""
    def bad(key: str) -> DataError:
        return DataError(f"{where}: tampered or damaged checkpoint metadata: {key!r} is "
                         f"{meta.get(key)!r}")

    spec = meta.get("spec")
    if not isinstance(spec, str):
        raise bad("spec")
    obs = meta.get("observations")
    if not isinstance(obs, list) or not obs or not all(isinstance(o, str) for o in obs):
        raise bad("observations")
    size = meta.get("image_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise bad("image_size")
    try:
        norm = Normalization(tuple(float(m) for m in meta["mean"]), tuple(float(s) for s in meta["std"]))
    except (KeyError, TypeError, ValueError):
        raise bad("mean") from None
    module = trainable(spec, len(obs), None).module
    set_stem_channels(module, norm.channels)
    return module, norm
