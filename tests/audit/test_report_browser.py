"""The audit report in a real headless Chromium (Debian's ``chromium``): the flagged strategy's
sentence names where its region is, and its figure (prototype and members with the region
outlined) is drawn on the page."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest

from .test_distinctive import PLACES, _audit

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def test_the_flagged_strategy_is_shown_with_its_region_and_location(tmp_path):
    from PIL import Image

    from chexplain.audit.report import write_outputs

    ph, a = _audit(PLACES["upper left, in the body"][0])
    st = next(s for s in a.strategies if s["flagged"])
    n = len(ph.labels)
    write_outputs(tmp_path, [a], {"Effusion": 0}, [f"img{i}" for i in range(n)], {"x": 1},
                  {}, ph.labels[:, None].astype(float))
    page = (tmp_path / "audit.html").as_uri()
    dom = _chromium("--dump-dom", page).stdout
    words = st["distinctive_region"]["words"]
    assert "Flagged strategies" in dom and words in dom and "upper left" in words
    tags = re.findall(r"<img[^>]*>", dom)
    shown = {re.search(r'alt="([^"]*)"', t).group(1): re.search(r'src="data:image/png;base64,([^"]+)"', t).group(1)
             for t in tags}
    strategy = [Image.open(io.BytesIO(base64.b64decode(b))) for alt, b in shown.items()
                if f"strategy {st['id']}" in alt and "outlined" in alt]
    assert strategy, list(shown)
    fig = np.asarray(strategy[0].convert("L"), dtype=float)
    assert fig.shape[1] > 600 and (fig < 40).sum() > 200  # the panels' black outlines drawn
    shot = tmp_path / "page.png"
    _chromium("--window-size=1200,2000", f"--screenshot={shot}", page)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1200) and pixels.std() > 20  # a rendered page, not a blank one
