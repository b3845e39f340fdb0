"""``xrv:WEIGHTS``: a TorchXRayVision DenseNet or ResNet by its weights name.

Weights come from ``--weights FILE`` (a state dict) or TorchXRayVision's own cache (the library
loads its file, downloading it as it would for the user when absent). The pathologies become
the output names, CheXpert's where they match (``Effusion`` → ``Pleural Effusion``); empty
pathology names (outputs a model was not trained for) are dropped. The logits are explained:
never xrv's sigmoid or its operating-point rescaling (``op_threshs``). Input: one channel,
[0, 1] mapped to [-1024, 1024], at the weights' resolution (224 or 512 px).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..data.images import XRV
from ..errors import ChexplainError, DataError
from ..io import file_sha256
from ..models.densenet import XRV_TO_CHEXPERT, XRVLogits
from .base import Built, ModelOptions, load_weights, read_state_dict


def _xrv():
    try:
        import torchxrayvision
    except ImportError:
        raise ChexplainError("xrv: models need the torchxrayvision package (pip install "
                             "torchxrayvision)") from None
    return torchxrayvision


def weights_info(name: str) -> dict:
    xrv = _xrv()
    urls = xrv.models.model_urls
    if name not in urls:
        raise ChexplainError(f"xrv:{name}: unknown TorchXRayVision weights; choose from "
                             f"{', '.join(k for k in urls if '-' in k)}")
    return urls[name]


def cache_file(name: str) -> Path:
    """Where TorchXRayVision keeps the weights ``name``."""
    xrv = _xrv()
    url = weights_info(name)["weights_url"]
    return Path(os.path.expanduser(xrv.utils.get_cache_dir())) / os.path.basename(url)


def output_names(pathologies) -> list[str]:
    """xrv pathology names → output names (CheXpert's where they match)."""
    return [XRV_TO_CHEXPERT.get(p, p) for p in pathologies]


def _resnet(name: str, classes: int) -> nn.Module:
    import torchvision

    arch = name.split("-")[0]
    if arch not in ("resnet50", "resnet101"):
        raise ChexplainError(f"xrv:{name}: unknown TorchXRayVision ResNet")
    model = getattr(torchvision.models, arch)(num_classes=classes, weights=None)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def _keep_rows(linear: nn.Linear, rows: list[int]) -> nn.Linear:
    head = nn.Linear(linear.in_features, len(rows), bias=linear.bias is not None)
    with torch.no_grad():
        head.weight.copy_(linear.weight[rows])
        if linear.bias is not None:
            head.bias.copy_(linear.bias[rows])
    return head


def library_model(name: str, weights: str | os.PathLike | None, spec: str,
                  download: bool = True) -> tuple[nn.Module, list[str], str | None]:
    """The xrv model ``name`` as the library lays it out: an xrv DenseNet, or (ResNet) the
    torchvision ResNet inside xrv's; its pathologies and the weights file's path (None: random)."""
    info = weights_info(name)
    labels = [str(p) for p in info["labels"]]
    is_resnet = name.startswith("resnet")
    if weights is not None and str(weights).lower() not in ("none", "random"):
        state = {k: v for k, v in read_state_dict(weights, spec).items() if k != "op_threshs"}
        if is_resnet:
            state = {k.removeprefix("model."): v for k, v in state.items()}
            model = _resnet(name, len(labels))
        else:
            model = _xrv().models.DenseNet(weights=None, num_classes=len(labels))
        load_weights(model, state, spec, weights)
        return model, labels, str(weights)
    if weights is not None:  # none / random
        model = _resnet(name, len(labels)) if is_resnet else \
            _xrv().models.DenseNet(weights=None, num_classes=len(labels))
        return model, labels, None
    cached = cache_file(name)
    if not cached.is_file() and not download:
        raise DataError(f"{spec}: weights not found at {cached}; pass --weights FILE")
    try:
        lib = (_xrv().models.ResNet if is_resnet else _xrv().models.DenseNet)(weights=name)
    except Exception as exc:  # the library's download or load failed (offline, damaged file)
        raise DataError(f"{spec}: weights not found in TorchXRayVision's cache ({cached}) and "
                        f"could not be fetched ({type(exc).__name__}); pass --weights FILE") from None
    return (lib.model if is_resnet else lib), labels, str(cached)


def build(name: str, options: ModelOptions, spec: str) -> Built:
    """The logits of the xrv model ``name`` (see the module doc)."""
    model, labels, path = library_model(name, options.weights, spec)
    kept = [k for k, p in enumerate(labels) if p]
    if isinstance(model, _xrv().models.DenseNet):
        model.pathologies = labels
        module = XRVLogits(model, [labels[k] for k in kept])
    else:
        if len(kept) < len(labels):
            model.fc = _keep_rows(model.fc, kept)
        module = model
    size = int(weights_info(name).get("input_resolution", 512 if name.startswith("resnet") else 224))
    sha = file_sha256(path) if path is not None else None
    return Built(module, output_names(labels[k] for k in kept), XRV, size, sha,
                 {"arch": name, "init": "random" if path is None else f"file ({path})"})
