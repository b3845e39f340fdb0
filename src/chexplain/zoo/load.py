"""``load_model(spec, ...)``: one model spec for every command and the Python API.

Spec forms: a chexplain checkpoint path; ``xrv:WEIGHTS``; ``timm:NAME`` and
``torchvision:NAME`` (with ``--weights FILE``); ``FILE.py:FACTORY`` or ``package.module:FACTORY``.
TorchScript and ``torch.export`` files are refused. Whatever the form, the model is checked
before any work: one forward on a blank input of its preprocessing's size, the logits taken
from a structured output (:mod:`chexplain.zoo.outputs`), and one unique non-empty name per
output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from ..data.images import Normalization
from ..errors import ChexplainError
from . import factory
from .base import Built, LoadedModel, ModelOptions, check_names, describe_normalization, \
    parse_normalization, read_names, state_sha256, with_channels
from .layers import first_conv
from .outputs import SelectOutput, choose_output

LIBRARIES = ("xrv", "timm", "torchvision")


def _build(spec: str, options: ModelOptions) -> Built:
    form, sep, name = spec.partition(":")
    if sep and form in LIBRARIES:
        if not name:
            raise ChexplainError(f"--model {spec!r}: give the {form} model's name after '{form}:'")
        if form == "xrv":
            from . import xrv as mod
        elif form == "timm":
            from . import timm_spec as mod
        else:
            from . import torchvision_spec as mod
        return mod.build(name, options, spec)
    path = Path(spec).expanduser()
    if path.is_file() or (path.exists() and not path.is_dir()):  # a device or pipe: named there
        from . import checkpoint

        return checkpoint.build(path, options, spec)
    if factory.is_factory(spec):
        return factory.build(spec, options)
    if path.is_dir():
        raise ChexplainError(f"--model {spec}: is a folder; give a checkpoint file (best.pt)")
    raise ChexplainError(f"--model {spec!r}: no such checkpoint file, and not a spec "
                         "(xrv:WEIGHTS, timm:NAME, torchvision:NAME, FILE.py:FACTORY, "
                         "package.module:FACTORY)")


def load_model(spec: str | os.PathLike, weights: str | os.PathLike | None = None,
               names: Sequence[str] | str | None = None, output: str | int | None = None,
               image_size: int | None = None, normalization: str | Normalization | None = None,
               channels: int | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """The model ``spec`` names, in eval mode on ``device``, returning its logits (see module doc).

    ``names``: output names (a list, a comma list or a file; default: the spec's own, else the
    14 CheXpert observations when the model has 14 outputs). ``output``: the logits' index or
    key in a structured output. ``image_size``, ``normalization`` (a name or ``MEAN/STD``) and
    ``channels`` override the spec's preprocessing.
    """
    spec = str(spec)
    if not spec.strip():
        raise ChexplainError("--model: empty model spec")
    options = ModelOptions(None if weights is None else str(weights), names, output, image_size,
                           normalization, channels)
    for what, value in (("--image-size", image_size), ("--channels", channels)):
        if value is not None and (isinstance(value, bool) or int(value) < 1):
            raise ChexplainError(f"{what} {value} must be a positive integer")
    norm_override = None if normalization is None else parse_normalization(normalization)
    built = _build(spec, options)
    module = built.module.eval()
    notes: list[str] = []
    norm = norm_override or built.normalization
    if norm is None:
        from ..data.images import IMAGENET

        norm = IMAGENET
        notes.append(f"{spec}: no preprocessing given; using ImageNet's normalisation "
                     "(--normalization to change)")
    stem = first_conv(module)
    if channels is not None:
        norm = with_channels(norm, int(channels))
    elif stem is not None and stem[1].in_channels != norm.channels:
        norm = with_channels(norm, stem[1].in_channels)
    size = int(image_size or built.image_size or 224)
    if not (image_size or built.image_size):
        notes.append(f"{spec}: no input size given; using 224 px (--image-size to change)")
    choice, k = _probe(module, norm.channels, size, output if output is not None else built.output, spec)
    if choice is not None:
        module = SelectOutput(module, choice).eval()
        if choice.note:
            notes.append(choice.note)
    if names is not None:
        out_names, source = read_names(names), "--class-names"
    elif built.names is not None:
        out_names, source = built.names, "the model"
    elif k == 14:
        from ..data.chexpert import OBSERVATIONS

        out_names, source = list(OBSERVATIONS), "the CheXpert observations (14 outputs)"
        notes.append(f"{spec}: 14 unnamed outputs taken as the CheXpert observations in their "
                     "usual order (--class-names to name them)")
    else:
        raise ChexplainError(f"{spec}: the model has {k} outputs; name them with --class-names "
                             "NAMES|FILE (the 14 CheXpert observations are assumed only for 14)")
    out_names = check_names(out_names, k, spec, source)
    sha = built.sha256 or state_sha256(module)
    identity = {"spec": spec, "sha256": sha, "output": None if choice is None else choice.text(),
                "names": out_names, "image_size": size, "normalization": describe_normalization(norm)}
    return LoadedModel(module.to(device), out_names, norm, size, spec, sha, identity,
                       dict(built.info), notes)


def _probe(module, channels: int, size: int, wanted, spec: str):
    """One forward on a blank 1×C×S×S input: the output choice and the number of outputs."""
    try:
        p = next(module.parameters())
        x = torch.zeros(1, channels, size, size, dtype=p.dtype, device=p.device)
    except StopIteration:
        x = torch.zeros(1, channels, size, size)
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as exc:  # the user's model on the input its preprocessing makes
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ChexplainError(f"{spec}: the model fails on a {channels}-channel {size}x{size} input "
                             f"({type(exc).__name__}: {first}); check --channels, --image-size") from None
    choice = choose_output(out, wanted, spec)
    logits = out if choice is None else choice.take(out)
    if logits.ndim != 2 or logits.shape[0] != 1:
        raise ChexplainError(f"{spec}: the logits have shape {tuple(logits.shape)} for one image; "
                             "expected (1, outputs)")
    return choice, int(logits.shape[1])
