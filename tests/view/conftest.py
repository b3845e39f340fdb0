"""Fixtures of the viewer's tests: a real quick demo (explain, compare and audit written by
the real commands on phantom radiographs), hostile copies of its folders, and a running
server over any folder."""

from __future__ import annotations

import json
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

HOSTILE = "<script>alert(1)</script>"
HOSTILE_META = '<img src=x onerror="alert(2)">'


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """``chexplain demo --quick --no-mnist``: explain/, compare/ and audit/ of a tiny model."""
    from chexplain.cli import main

    out = tmp_path_factory.mktemp("view-demo") / "demo"
    assert main(["demo", "--quick", "--no-mnist", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def hostile_explain(demo_run, tmp_path_factory) -> Path:
    """The demo's explain folder with an image identity and a finding named like a script."""
    out = tmp_path_factory.mktemp("view-hostile") / "explain"
    shutil.copytree(demo_run / "explain", out)
    summary = json.loads((out / "explain.json").read_text())
    rec = summary["images"][0]
    rec["identity"] = HOSTILE
    rec["probabilities"] = {HOSTILE if k == "Fracture" else k: v for k, v in rec["probabilities"].items()}
    (out / "explain.json").write_text(json.dumps(summary))
    return out


@pytest.fixture(scope="session")
def hostile_audit(tmp_path_factory) -> Path:
    """A small audit whose class is named ``<script>…`` and whose metadata holds markup."""
    from .synthetic import write_synthetic_audit

    return write_synthetic_audit(tmp_path_factory.mktemp("view-hostile-audit") / "audit", 40,
                                 classes=(HOSTILE, "Edema"), shard_size=16,
                                 key="<b>img{:03d}</b>.png", sites=(HOSTILE_META, "B"))


@contextmanager
def running(folder: Path) -> Iterator[str]:
    """A viewer over ``folder`` on a free loopback port; yields its URL."""
    from chexplain.view.server import ViewOptions, make_server

    server = make_server(folder, ViewOptions(port=0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="session")
def demo_url(demo_run) -> Iterator[str]:
    with running(demo_run) as url:
        yield url
