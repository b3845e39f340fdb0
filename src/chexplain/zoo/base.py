"""What every model spec form yields: a :class:`Built` model (from one spec-form module) and,
after the common checks of :func:`chexplain.zoo.load.load_model`, a :class:`LoadedModel`."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..data.images import NORMALIZATIONS, Normalization, Preprocess
from ..errors import ChexplainError, DataError


@dataclass
class ModelOptions:
    """The options that go with a spec (CLI: ``--weights``, ``--class-names``, ``--output``,
    ``--image-size``, ``--normalization``, ``--channels``); None: the spec's own."""

    weights: str | None = None
    names: Sequence[str] | str | None = None  #: output names, or a comma list, or a file
    output: str | int | None = None  #: which element of a tuple/dict/object output is the logits
    image_size: int | None = None
    normalization: str | Normalization | None = None
    channels: int | None = None


@dataclass
class Built:
    """A model as one spec form builds it, before the common checks."""

    module: nn.Module
    names: list[str] | None = None  #: the form's own output names (None: not known)
    normalization: Normalization | None = None
    image_size: int | None = None
    sha256: str | None = None  #: of the weights file (None: computed from the state dict)
    info: dict[str, Any] = field(default_factory=dict)  #: facts for reports (arch, epoch, ...)
    output: str | int | None = None  #: the form's own choice of logits (a factory's "output")


@dataclass
class LoadedModel:
    """A model ready for every command: ``module`` (eval mode) returns the logits tensor."""

    module: nn.Module
    names: list[str]  #: one per output, unique (case-insensitive), non-empty
    normalization: Normalization
    image_size: int
    spec: str
    sha256: str  #: SHA-256 of the weights (file bytes, or the state dict's tensors)
    identity: dict[str, Any]  #: what makes two runs' models the same (for fingerprints)
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  #: choices made for the user, said once

    @property
    def channels(self) -> int:
        return self.normalization.channels

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(int(self.image_size), None, self.normalization)

    def record(self) -> dict[str, Any]:
        """What results record about the model (explain.json, compare.json, ...)."""
        return {"spec": self.spec, "sha256": self.sha256, "outputs": list(self.names),
                "image_size": int(self.image_size), "channels": self.channels,
                "normalization": describe_normalization(self.normalization),
                "mean": list(self.normalization.mean), "std": list(self.normalization.std),
                **{k: v for k, v in self.identity.items() if k == "output"}}


def describe_normalization(norm: Normalization) -> str:
    """``imagenet`` / ``xrv`` when it is one of those, else ``MEAN/STD`` (comma lists)."""
    for name, known in NORMALIZATIONS.items():
        if known == norm:
            return name
    return ",".join(f"{m:g}" for m in norm.mean) + "/" + ",".join(f"{s:g}" for s in norm.std)


def parse_normalization(value: str | Normalization | Sequence, what: str = "--normalization"
                        ) -> Normalization:
    """A name (``imagenet``, ``xrv``), ``MEAN/STD`` with comma lists (``0.5/0.25`` or
    ``0.485,0.456,0.406/0.229,0.224,0.225``), a (mean, std) pair or a Normalization."""
    if isinstance(value, Normalization):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        mean, std = value
    else:
        text = str(value).strip()
        if text.lower() in NORMALIZATIONS:
            return NORMALIZATIONS[text.lower()]
        if text.count("/") != 1:
            raise ChexplainError(f"{what} {text!r}: give {', '.join(NORMALIZATIONS)} or MEAN/STD "
                                 "(comma lists, e.g. 0.5,0.5,0.5/0.25,0.25,0.25)")
        mean, std = (part.split(",") for part in text.split("/"))
    try:
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        return Normalization(mean, std)
    except (TypeError, ValueError) as exc:
        raise ChexplainError(f"{what} {value!r}: {exc}") from None


def with_channels(norm: Normalization, channels: int) -> Normalization:
    """``norm`` on ``channels`` channels: one channel replicated, or several averaged to one."""
    if channels == norm.channels:
        return norm
    if norm.channels == 1:
        return Normalization(norm.mean * channels, norm.std * channels)
    if channels == 1:
        return Normalization((sum(norm.mean) / norm.channels,), (sum(norm.std) / norm.channels,))
    raise ChexplainError(f"--channels {channels}: the normalisation has {norm.channels} channels; "
                         "give --normalization MEAN/STD with one value per channel")


def read_names(value: Sequence[str] | str, what: str = "--class-names") -> list[str]:
    """Output names: a list, a comma-separated string, or a text file (one name a line, or a
    comma-separated line)."""
    if not isinstance(value, str):
        return [str(v).strip() for v in value]
    path = Path(value)
    if "," not in value and path.suffix.lower() in (".txt", ".csv", ".names") or path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{what} {value}: cannot read the names file ({exc})") from None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return [n.strip() for n in lines[0].split(",")] if len(lines) == 1 else lines
    return [n.strip() for n in value.split(",")]


def check_names(names: Sequence[str], outputs: int, spec: str, source: str) -> list[str]:
    """``names`` must name each of the ``outputs`` once: non-empty and unique (case-insensitive,
    as the command line matches them)."""
    names = [str(n) for n in names]
    if len(names) != outputs:
        raise ChexplainError(f"{spec}: {source} gives {len(names)} output names but the model has "
                             f"{outputs} outputs")
    empty = [k for k, n in enumerate(names) if not n.strip()]
    if empty:
        raise ChexplainError(f"{spec}: output {empty[0]} has an empty name ({source})")
    seen: dict[str, int] = {}
    for k, n in enumerate(names):
        if n.lower() in seen:
            raise ChexplainError(f"{spec}: duplicate output name {n!r} (outputs {seen[n.lower()]} "
                                 f"and {k}, {source}); every output needs its own name")
        seen[n.lower()] = k
    return names


def state_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's state dict: names, shapes, dtypes and tensor bytes in key order."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        t = value.detach().cpu().contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def weights_file(path: str | os.PathLike, spec: str) -> Path:
    """``--weights FILE`` as a path that exists (one-line error otherwise)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{spec}: weights file {p} not found" if not p.is_dir() else
                        f"{spec}: --weights {p} is a folder, not a weights file")
    return p


def read_state_dict(path: str | os.PathLike, spec: str) -> dict[str, torch.Tensor]:
    """A state dict from a file: a plain one, or a checkpoint holding it under ``model``,
    ``state_dict`` (timm, Lightning) or ``model_state_dict``; DDP's ``module.`` prefixes
    removed. Loaded with ``weights_only=True``."""
    from ..train.checkpoint import load_checkpoint

    path = weights_file(path, spec)
    obj = load_checkpoint(path)
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"{path}: holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], spec: str, path: Any) -> None:
    """Load ``state`` strictly into ``module``; one line naming the first misfit otherwise."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shaped:
        if shaped:
            k = shaped[0]
            why = f"{k} has shape {tuple(state[k].shape)}, the model {tuple(own[k].shape)}"
        elif missing:
            why = f"{len(missing)} tensor(s) missing, e.g. {missing[0]}"
        else:
            why = f"{len(unexpected)} unexpected tensor(s), e.g. {unexpected[0]}"
        raise DataError(f"{path}: weights do not fit {spec}: {why}")
    module.load_state_dict(state, strict=False)
