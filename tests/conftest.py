"""Project-wide test settings: ``@pytest.mark.slow`` tests run only with CHEXPLAIN_SLOW=1."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CHEXPLAIN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set CHEXPLAIN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
