"""Project-wide test settings: ``@pytest.mark.slow`` tests run only with CHEXPLAIN_SLOW=1; every
fixture and test starts from the same random state (Python's, NumPy's and torch's global
generators seeded, hypothesis derandomised), so that no outcome depends on test order or run."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

settings.register_profile("chexplain", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("chexplain")


def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> None:
    _seed_everything()  # a fixture of any scope draws the same numbers whichever test needs it first


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    _seed_everything()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CHEXPLAIN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set CHEXPLAIN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


class FigureAudit(dict):
    """Every figure saved through matplotlib during a test: name → layout problems found as it
    was written (overlapping or clipped titles, labels, tick labels; see
    :func:`chexplain.viz.layout.layout_problems`)."""

    def assert_clean(self, folder, min_px: int = 200, max_px: int = 4000,
                     inputs: tuple[str, ...] = ("data",)) -> list[str]:
        """No recorded figure has a layout problem, and every PNG under ``folder`` (except the
        input images under its ``inputs`` subfolders) is between ``min_px`` and ``max_px``
        pixels on its longer side. Returns the PNG names checked."""
        from pathlib import Path

        from PIL import Image

        bad = {k: v for k, v in self.items() if v}
        assert not bad, f"figure layout problems: {bad}"
        checked = []
        for png in sorted(Path(folder).rglob("*.png")):
            if png.relative_to(folder).parts[0] in inputs:
                continue
            w, h = Image.open(png).size
            assert min_px <= max(w, h) <= max_px and min(w, h) >= 64, f"{png}: {w} x {h} px"
            checked.append(png.name)
        return checked


@pytest.fixture
def figure_audit(monkeypatch) -> FigureAudit:
    """A :class:`FigureAudit` filled by a wrapped ``Figure.savefig`` during the test."""
    import re

    from matplotlib.figure import Figure

    from chexplain.viz.layout import layout_problems

    seen = FigureAudit()
    original = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        name = re.sub(r"^\.(.+)\.[^.]+\.tmp(\.\w+)$", r"\1\2", Path(str(fname)).name)  # atomic temp name
        seen[f"{Path(str(fname)).parent.name}/{name}"] = layout_problems(self)
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return seen


@dataclass(frozen=True)
class TinyPhantom:
    """Four 32-px phantom radiographs and a random tiny DenseNet checkpoint for them."""

    csv: Path
    checkpoint: Path


def tiny_densenet_checkpoint(path: Path, size: int) -> Path:
    """A random tiny DenseNet with CheXpert's 14 outputs for ``size``-px inputs, saved as a
    chexplain checkpoint."""
    from chexplain.data.chexpert import OBSERVATIONS
    from chexplain.models.densenet import chexpert_densenet, model_meta
    from chexplain.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model, init = chexpert_densenet("tiny", 14, None)
    meta = model_meta("tiny", 14, 3, OBSERVATIONS, "imagenet", size, init)
    return save_checkpoint(path, model, meta=meta, epoch=1, mean_auroc=0.5)


@pytest.fixture
def tiny_phantom(tmp_path) -> TinyPhantom:
    from chexplain.data.phantom import write_phantom

    csv = write_phantom(tmp_path / "phantom", 4, size=32, seed=3, progress=False)
    return TinyPhantom(csv, tiny_densenet_checkpoint(tmp_path / "best.pt", 32))


@pytest.fixture(scope="session")
def phantom_csv(tmp_path_factory) -> Path:
    """12 phantom radiographs at 64 px: ``<root>/phantom/train.csv``."""
    from chexplain.data.phantom import write_phantom

    root = tmp_path_factory.mktemp("phantom")
    return write_phantom(root / "phantom", 12, size=64, seed=3, progress=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny DenseNet checkpoint for :func:`phantom_csv`'s 64-px images."""
    return tiny_densenet_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", 64)
