"""``path/to/file.py:factory`` or ``package.module:factory``: the user's own code builds the model.

The factory is called with no argument (or ``weights=PATH`` when it has a ``weights``
parameter and ``--weights`` is given; otherwise ``--weights`` is loaded into the module it
returns as a state dict). It returns either an ``nn.Module`` or a dict with ``model`` and
optionally ``names`` (output names), ``image_size``, ``normalization`` (a name, ``MEAN/STD``, a
(mean, std) pair or a :class:`~chexplain.data.images.Normalization`) and ``output`` (which
element of a structured output holds the logits). Anything else is refused with one line.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path

from torch import nn

from ..errors import ChexplainError
from ..io import file_sha256
from .base import Built, ModelOptions, load_weights, parse_normalization, read_state_dict, \
    weights_file

_MODULE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
FIELDS = ("model", "names", "image_size", "normalization", "output")


def is_factory(spec: str) -> bool:
    """``X.py:NAME`` or ``dotted.module:NAME``."""
    left, sep, right = spec.rpartition(":")
    return bool(sep) and right.isidentifier() and (left.endswith(".py") or bool(_MODULE.match(left)))


def _import(left: str, spec: str):
    if left.endswith(".py"):
        path = Path(left).expanduser()
        if not path.is_file():
            raise ChexplainError(f"{spec}: no such Python file {path}")
        name = "chexplain_factory_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        loader_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ChexplainError(f"{spec}: importing {path} failed: {type(exc).__name__}: "
                                 f"{exc}") from None
        return module
    try:
        return importlib.import_module(left)
    except ImportError as exc:
        raise ChexplainError(f"{spec}: cannot import module {left!r}: {exc}") from None


def build(spec: str, options: ModelOptions) -> Built:
    left, _, attr = spec.rpartition(":")
    module = _import(left, spec)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ChexplainError(f"{spec}: {left} has no callable {attr!r}")
    takes_weights = options.weights is not None and "weights" in _parameters(factory)
    try:
        made = factory(weights=str(options.weights)) if takes_weights else factory()
    except Exception as exc:
        raise ChexplainError(f"{spec}: the factory raised {type(exc).__name__}: {exc}") from None
    extra = {}
    if isinstance(made, dict):
        unknown = [k for k in made if k not in FIELDS]
        if "model" not in made or unknown:
            raise ChexplainError(f"{spec}: the factory's dict needs 'model' and may hold "
                                 f"{', '.join(FIELDS[1:])}" + (f"; not {unknown[0]!r}" if unknown else ""))
        extra, made = made, made["model"]
    if not isinstance(made, nn.Module):
        raise ChexplainError(f"{spec}: the factory returned a {type(made).__name__}, not an "
                             "nn.Module (or a dict with 'model')")
    sha = None
    if options.weights is not None and not takes_weights:
        path = weights_file(options.weights, spec)
        load_weights(made, read_state_dict(path, spec), spec, path)
        sha = file_sha256(path)
    elif takes_weights:
        sha = file_sha256(weights_file(options.weights, spec))
    norm = parse_normalization(extra["normalization"], f"{spec}: normalization") \
        if extra.get("normalization") is not None else None
    size = extra.get("image_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 8):
        raise ChexplainError(f"{spec}: image_size {size!r} must be an integer of at least 8")
    names = extra.get("names")
    return Built(made, None if names is None else [str(n) for n in names], norm, size, sha,
                 {"arch": spec}, extra.get("output"))


def _parameters(fn) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []
