"""Installability: the declared requirements accept a newer PyTorch than the tested one.

``pyproject.toml`` keeps lower bounds only for torch and torchvision; the tested versions are
pinned in the Makefile (``benchmarks/check_install.py`` runs pip's resolver on it in a fresh
venv with a newer fake torch).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
requirements = pytest.importorskip("packaging.requirements")
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _declared() -> dict:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = [requirements.Requirement(r) for r in data["project"]["dependencies"]]
    return {r.name: r for r in reqs}, data


def _makefile_pins() -> dict:
    text = (ROOT / "Makefile").read_text()
    return dict(re.findall(r'"(torch|torchvision)==([0-9.]+)"', text))


def test_newer_torch_satisfies_the_declared_requirements():
    reqs, _ = _declared()
    pins = _makefile_pins()
    assert set(pins) == {"torch", "torchvision"}  # the tested versions are pinned in the Makefile
    for name, newer in (("torch", ("2.15.0", "2.20.1", "3.0.0")), ("torchvision", ("0.30.0", "1.0.0"))):
        spec = reqs[name].specifier
        assert spec.contains(pins[name]), f"{name} {pins[name]} (tested) is not accepted: {spec}"
        for v in newer:
            assert spec.contains(v), f"{name} {v} would be refused by {name}{spec}"
        assert all(s.operator == ">=" for s in spec), f"{name}{spec}: lower bounds only"
    # the oldest supported versions the README states
    assert reqs["torch"].specifier.contains("2.1.0") and not reqs["torch"].specifier.contains("2.0.1")
    assert reqs["torchvision"].specifier.contains("0.16.0")


def test_license_is_an_spdx_string_and_zennit_is_pinned_to_what_installs():
    _, data = _declared()
    assert isinstance(data["project"]["license"], str)  # a table makes setuptools >= 77 warn
    dev = [requirements.Requirement(r) for r in data["project"]["optional-dependencies"]["dev"]]
    zennit = next(r for r in dev if r.name == "zennit")
    assert str(zennit.specifier) == "==0.5.1"  # 1.0.0 requires Python >= 3.11.11
