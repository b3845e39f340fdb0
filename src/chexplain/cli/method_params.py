"""``--param METHOD:NAME=VALUE``: a method's parameters on the command line.

Repeatable; ``METHOD:`` may be left out when the command runs one method (``audit``). Values
are read as ``true``/``false``, integers, real numbers, else text (an Integrated Gradients
``baseline`` that is neither ``zero`` nor ``blur`` is an image file, see
:class:`chexplain.evaluate.baselines.Attributor`). Every parameter is checked against its method
before the model runs: an unknown method, name or value is refused in one line.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Sequence

from ..errors import ChexplainError

_INT = re.compile(r"[+-]?\d+")
_SPEC = re.compile(r"(?:(?P<method>[A-Za-z0-9+_.-]+):)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)")


def add_param_argument(p: argparse.ArgumentParser, single: bool = False) -> None:
    """``--param`` on the parser ``p`` (``single``: the command has one method)."""
    form = "[METHOD:]NAME=VALUE" if single else "METHOD:NAME=VALUE"
    p.add_argument("--param", action="append", default=[], metavar=form,
                   help="a method's parameter, repeatable (e.g. integrated-gradients:steps=64, "
                        "smoothgrad:sigma=0.1, occlusion:window=16, lrp-epsilon:epsilon=0.01); "
                        "see chexplain.explain")


def parse_value(text: str) -> Any:
    """``true``/``false`` → bool, an integer → int, a real number → float, else the text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if _INT.fullmatch(text.strip()):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def parse_params(specs: Sequence[str], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--param`` values → {method: {name: value}}, each checked by
    :func:`chexplain.api.check_method_params`; one-line errors naming the option."""
    from ..registry import check_method_params

    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        m = _SPEC.fullmatch(spec.strip())
        if m is None or m["value"] == "":
            raise ChexplainError(f"--param {spec!r}: write METHOD:NAME=VALUE, e.g. "
                                 "integrated-gradients:steps=64")
        method = m["method"]
        if method is None:
            if len(methods) != 1:
                raise ChexplainError(f"--param {spec!r}: name the method (METHOD:NAME=VALUE); "
                                     f"this run has {', '.join(methods)}")
            method = methods[0]
        if method not in methods:
            raise ChexplainError(f"--param {spec!r}: {method!r} is not among the methods of this "
                                 f"run ({', '.join(methods)})")
        params = out.setdefault(method, {})
        if m["name"] in params:
            raise ChexplainError(f"--param {spec!r}: {method}:{m['name']} is given twice")
        params[m["name"]] = parse_value(m["value"])
    for method, params in out.items():
        check_method_params(method, params)
    return out
