"""``chexplain view`` over a synthetic audit of N images (default 100,000, in the audit's real
on-disk format, :mod:`tests.view.synthetic`): time from starting the server to the first
paint of the scatter in headless Chromium, the API's first answers, and the server's memory
(RSS: file-backed and anonymous) after browsing members of many shards.

    python benchmarks/view_speed.py [--n 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.view.synthetic import write_synthetic_audit  # noqa: E402


def rss(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: int(status.split(f"{k}:")[1].split()[0]) / 1024 for k in ("VmRSS", "RssAnon", "RssFile")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--keep", help="write the store here and keep it")
    args = ap.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp()) / "audit"
    t = time.perf_counter()
    if not (folder / "audit.json").is_file():
        write_synthetic_audit(folder, args.n)
    print(f"synthetic audit of {args.n} images written in {time.perf_counter() - t:.1f} s "
          f"({sum(p.stat().st_size for p in folder.rglob('*') if p.is_file()) / 2**20:.0f} MiB)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "chexplain", "view", str(folder), "--no-browser",
                             "--port", "0"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().split(" at ")[1].split()[0]
        t_up = time.perf_counter() - t0
        print(f"server answering after {t_up:.2f} s; RSS {rss(proc.pid)}")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            t1 = time.perf_counter()
            page.goto(url + "#/s/0/audit")
            page.wait_for_selector("#app[data-state='audit']", state="attached", timeout=60_000)
            t_paint = time.perf_counter()
            print(f"first paint of the scatter: {t_paint - t1:.2f} s after navigation; server start "
                  f"+ first paint {t_up + t_paint - t1:.2f} s (the browser's own start not counted)")
            box = page.locator("#scatter").bounding_box()
            t2 = time.perf_counter()
            page.mouse.move(box["x"] + 5, box["y"] + 5)
            page.mouse.down()
            for dx, dy in ((box["width"] / 2, 5), (box["width"] / 2, box["height"] - 5), (5, box["height"] - 5), (5, 5)):
                page.mouse.move(box["x"] + dx, box["y"] + dy, steps=4)
            page.mouse.up()
            page.wait_for_selector("#app[data-state='audit-selection']", state="attached", timeout=60_000)
            page.wait_for_function("() => [...document.querySelectorAll('#members img')].every(i => i.complete)")
            print(f"lasso of about half the points, first page of members shown: {time.perf_counter() - t2:.2f} s; "
                  f"{page.locator('#selection h3').first.inner_text()}")
            t3 = time.perf_counter()
            page.locator("#colour-by").select_option("Site")
            page.wait_for_function("() => document.getElementById('legend').textContent.includes('A (')")
            print(f"recoloured by a metadata column: {time.perf_counter() - t3:.2f} s")
            b.close()
        for r in range(0, args.n, max(1, args.n // 40)):  # members of 40 shards
            urllib.request.urlopen(url + f"img/audit/member?s=0&c=Pleural%20Effusion&r={r}").read()
        print(f"after browsing members of 40 shards: RSS {rss(proc.pid)}")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        if not args.keep:
            shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
