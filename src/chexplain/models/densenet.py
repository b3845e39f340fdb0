"""DenseNet-121 with a 14-output head for CheXpert, and an adapter for torchxrayvision DenseNets.

:func:`chexpert_densenet` builds torchvision's DenseNet-121 (or a small DenseNet for tests and
quick experiments) whose ``classifier`` gives one **logit** per observation: no sigmoid in
``forward``, so that LRP and Grad-CAM explain the logits and the model stays traceable by
``torch.fx``. ImageNet weights are used when the user has them (torchvision's download cache,
or a file given with ``weights=PATH``); the model is never downloaded behind the user's back.

:class:`XRVLogits` wraps a torchxrayvision ``DenseNet`` (or any module with ``features`` and a
``classifier`` in its layout) and returns its logits: ``classifier(features2(x))``, i.e.
without xrv's sigmoid and without its operating-point rescaling (``op_threshs``), which are
applied only in xrv's own ``forward``. torchxrayvision is not a dependency of chexplain.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ChexplainError, DataError

ARCHS = ("densenet121", "tiny")
#: torchvision's ImageNet DenseNet-121 weights (file name in torch.hub's checkpoint cache).
IMAGENET_FILE = "densenet121-a639ec97.pth"
#: torchxrayvision pathology names → CheXpert observations (identical names map to themselves).
XRV_TO_CHEXPERT = {"Effusion": "Pleural Effusion"}
_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _architecture(arch: str, num_classes: int, in_channels: int, drop_rate: float) -> nn.Module:
    from torchvision.models import DenseNet

    if arch == "densenet121":
        model = DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes, drop_rate=drop_rate)
    elif arch == "tiny":  # 4 dense blocks of 2 layers, growth 8: ~30 k parameters
        model = DenseNet(8, (2, 2, 2, 2), 16, bn_size=2, num_classes=num_classes,
                         drop_rate=drop_rate)
    else:
        raise ChexplainError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    if in_channels != 3:
        old = model.features.conv0
        model.features.conv0 = nn.Conv2d(in_channels, old.out_channels, 7, 2, 3, bias=False)
        nn.init.kaiming_normal_(model.features.conv0.weight)
    return model


def imagenet_cache_file() -> Path:
    """Where torchvision keeps its downloaded ImageNet DenseNet-121 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from ..train.checkpoint import load_checkpoint

    obj = load_checkpoint(path)
    state = obj.get("model", obj.get("state_dict", obj))
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: holds no state dict of tensors")
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")  # saved from DistributedDataParallel
        m = _OLD_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def load_backbone(model: nn.Module, path: str | os.PathLike) -> int:
    """Load every tensor of the state dict in ``path`` whose name and shape fit ``model``.

    Accepts torchvision state dicts (old ``norm.1`` key names too), chexplain checkpoints and
    DDP-prefixed keys; the classifier is skipped when its shape differs (ImageNet's 1000
    classes). Raises :class:`DataError` when no feature tensor fits. Returns how many loaded.
    """
    path = Path(path)
    state = _read_state_dict(path)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    features = [k for k in own if k.startswith("features.")
                and not k.endswith("num_batches_tracked")]  # absent from torchvision's files
    missing = [k for k in features if k not in fitting]
    if missing:
        bad = missing[0]
        why = (f"shape {tuple(state[bad].shape)} vs {tuple(own[bad].shape)}" if bad in state
               else "not in the file")
        raise DataError(f"{path}: weights do not fit this DenseNet ({len(missing)} of "
                        f"{len(features)} feature tensors missing or mis-shaped, e.g. {bad}: {why})")
    model.load_state_dict(fitting, strict=False)
    return len(fitting)


def chexpert_densenet(arch: str = "densenet121", num_classes: int = 14,
                      weights: str | os.PathLike | None = "auto", in_channels: int = 3,
                      drop_rate: float = 0.0) -> tuple[nn.Module, str]:
    """A DenseNet with ``num_classes`` logits; returns ``(model, init)``.

    ``weights``: ``"auto"`` (ImageNet from torchvision's cache when present, else random),
    ``"imagenet"`` (the cached file must exist), ``"none"``/``None`` (random), or a path to a
    state dict / checkpoint (see :func:`load_backbone`). ``init`` says in words which one was
    used, e.g. ``"imagenet (…/densenet121-a639ec97.pth)"`` or ``"random"``.
    """
    if num_classes < 1:
        raise ChexplainError(f"number of classes {num_classes} must be at least 1")
    model = _architecture(arch, num_classes, in_channels, drop_rate)
    choice = "none" if weights is None else str(weights)
    if choice.lower() in ("none", "random"):
        return model, "random"
    if choice.lower() in ("auto", "imagenet"):
        cached = imagenet_cache_file()
        usable = arch == "densenet121" and in_channels == 3
        if usable and cached.is_file():
            load_backbone(model, cached)
            return model, f"imagenet ({cached})"
        if choice.lower() == "imagenet":
            if not usable:
                raise ChexplainError(f"ImageNet weights exist only for densenet121 with 3 input "
                                     f"channels, not {arch} with {in_channels}")
            raise ChexplainError(f"ImageNet weights not found at {cached}; download them once "
                                 "with torchvision (DenseNet121_Weights.IMAGENET1K_V1) or pass "
                                 "--weights PATH")
        reason = "no ImageNet weights for this architecture" if not usable else \
            f"no ImageNet weights in torchvision's cache ({cached})"
        return model, f"random ({reason})"
    load_backbone(model, choice)
    return model, f"file ({choice})"


def model_meta(arch: str, num_classes: int, in_channels: int, observations: Sequence[str],
               normalization: str, image_size: int, init: str) -> dict[str, Any]:
    """What :func:`load_trained` needs to rebuild a model, stored in its checkpoints."""
    return {"kind": "chexplain-chexpert-densenet", "arch": arch, "num_classes": int(num_classes),
            "in_channels": int(in_channels), "observations": list(observations),
            "normalization": normalization, "image_size": int(image_size), "init": init}


def load_trained(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """A trained CheXpert DenseNet (``best.pt`` or ``last.pt``) in eval mode, and its metadata
    (``arch``, ``observations``, ``normalization``, ``image_size``, ``epoch`` ...)."""
    from ..train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, map_location=map_location)
    meta = ckpt.get("meta")
    if not isinstance(meta, dict) or meta.get("kind") != "chexplain-chexpert-densenet" \
            or "model" not in ckpt:
        raise DataError(f"{path}: not a chexplain CheXpert model checkpoint "
                        "(written by `chexplain chexpert train`)")
    _check_meta(path, meta)
    model, _ = chexpert_densenet(meta["arch"], meta["num_classes"], None, meta["in_channels"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise DataError(f"{path}: weights do not fit {meta['arch']}: "
                        f"{str(exc).splitlines()[0]}") from None
    info = dict(meta)
    for key in ("epoch", "mean_auroc"):  # best.pt: the epoch it was saved at
        if key in ckpt:
            info[key] = ckpt[key]
    if "epoch" not in info and isinstance(ckpt.get("state"), dict):  # last.pt: epochs done
        info["epoch"] = ckpt["state"].get("epoch")
    return model.to(map_location).eval(), info


def _check_meta(path: str | os.PathLike, meta: Mapping[str, Any]) -> None:
    """Every metadata field :func:`load_trained` and its users read, with a sane value."""
    from ..data.images import NORMALIZATIONS

    def bad(key: str, why: str) -> DataError:
        return DataError(f"{path}: tampered or damaged checkpoint metadata: {key!r} {why}")

    def whole(key: str, low: int) -> None:
        v = meta.get(key)
        if key not in meta:
            raise bad(key, "is missing")
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise bad(key, f"is {v!r}, expected an integer >= {low}")

    if meta.get("arch") not in ARCHS:
        raise bad("arch", f"is {meta.get('arch')!r}, expected one of {', '.join(ARCHS)}")
    whole("num_classes", 1)
    whole("in_channels", 1)
    whole("image_size", 32)
    obs = meta.get("observations")
    if not isinstance(obs, list) or not all(isinstance(o, str) for o in obs):
        raise bad("observations", "is not a list of names")
    if len(obs) != meta["num_classes"]:
        raise bad("observations", f"names {len(obs)} outputs, num_classes is {meta['num_classes']}")
    norm = meta.get("normalization")
    if not isinstance(norm, str) or norm.lower() not in NORMALIZATIONS:
        raise bad("normalization", f"is {norm!r}, expected one of {', '.join(NORMALIZATIONS)}")
    if len(NORMALIZATIONS[norm.lower()].mean) != meta["in_channels"]:
        raise bad("in_channels", f"is {meta['in_channels']} but normalisation {norm!r} makes "
                                 f"{len(NORMALIZATIONS[norm.lower()].mean)}")


class XRVLogits(nn.Module):
    """Logits of a torchxrayvision-style DenseNet: ``classifier(flatten(pool(relu(features(x)))))``.

    ``model`` needs a ``features`` module and a ``classifier`` :class:`~torch.nn.Linear`; its
    ``pathologies`` (when present) name the outputs. ``pathologies=[...]`` keeps only those
    outputs, in that order (their classifier rows are copied into a new Linear, so LRP sees a
    plain layer); :meth:`for_chexpert` keeps the outputs that are CheXpert observations. The
    features are shared with ``model``, not copied. Input: what the wrapped model expects
    (xrv: 1 channel scaled to [-1024, 1024], see ``get_normalization("xrv")``).
    """

    def __init__(self, model: nn.Module, pathologies: Sequence[str] | None = None) -> None:
        super().__init__()
        features, classifier = getattr(model, "features", None), getattr(model, "classifier", None)
        if not isinstance(features, nn.Module) or not isinstance(classifier, nn.Linear):
            raise ChexplainError(f"{type(model).__name__} is not a torchxrayvision-style DenseNet "
                                 "(needs a 'features' module and a 'classifier' Linear)")
        names = [str(p) for p in getattr(model, "pathologies", [])] or \
            [f"output {i}" for i in range(classifier.out_features)]
        if len(names) != classifier.out_features:
            raise ChexplainError(f"model names {len(names)} pathologies but its classifier has "
                                 f"{classifier.out_features} outputs")
        self.features = features
        if pathologies is None:
            self.classifier = classifier
            self.pathologies = names
        else:
            unknown = [p for p in pathologies if p not in names or not p]
            if unknown or not pathologies:
                raise ChexplainError(f"pathology {unknown[0] if unknown else None!r} is not an "
                                     f"output of this model; it has {', '.join(n for n in names if n)}")
            rows = [names.index(p) for p in pathologies]
            head = nn.Linear(classifier.in_features, len(rows), bias=classifier.bias is not None)
            head = head.to(classifier.weight.device, classifier.weight.dtype)
            with torch.no_grad():
                head.weight.copy_(classifier.weight[rows])
                if classifier.bias is not None:
                    head.bias.copy_(classifier.bias[rows])
            self.classifier = head
            self.pathologies = list(pathologies)

    @classmethod
    def for_chexpert(cls, model: nn.Module) -> "XRVLogits":
        """Only the outputs that are CheXpert observations, in :data:`OBSERVATIONS` order."""
        from ..data.chexpert import OBSERVATIONS

        names = [str(p) for p in getattr(model, "pathologies", [])]
        by_obs = {XRV_TO_CHEXPERT.get(n, n): n for n in names if n}
        kept = [by_obs[o] for o in OBSERVATIONS if o in by_obs]
        if not kept:
            raise ChexplainError("model has no output named after a CheXpert observation")
        return cls(model, kept)

    @property
    def observations(self) -> list[str | None]:
        """The CheXpert observation of each output (None where there is none)."""
        from ..data.chexpert import OBSERVATIONS

        return [o if (o := XRV_TO_CHEXPERT.get(p, p)) in OBSERVATIONS else None
                for p in self.pathologies]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.features(x))
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return self.classifier(torch.flatten(out, 1))
