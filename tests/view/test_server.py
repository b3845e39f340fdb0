"""The viewer's server and command line over folders the real commands wrote: recognising
them, refusing what is not one, serving only from inside, answering with the stored values."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chexplain.cli import main
from chexplain.errors import ChexplainError
from chexplain.view.folders import open_folder

from .conftest import running

SRC = Path(__file__).resolve().parents[2] / "src"


def get(url: str, headers: dict | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def get_json(url: str):
    status, kind, body = get(url)
    assert status == 200 and kind.startswith("application/json"), (url, status, body[:200])
    return json.loads(body)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


def test_a_demo_folder_shows_its_explain_compare_and_audit_in_that_order(demo_run):
    folder = open_folder(demo_run)
    assert folder.kind == "demo"
    assert [(s.kind, s.name) for s in folder.sections] == [
        ("explain", "explain"), ("compare", "compare"), ("audit", "audit")]
    assert open_folder(demo_run / "audit").sections[0].name == "."


def test_what_is_not_a_result_folder_is_refused_naming_what_is_missing(tmp_path, demo_run):
    with pytest.raises(ChexplainError, match="no such folder"):
        open_folder(tmp_path / "nothing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ChexplainError, match="not a folder"):
        open_folder(tmp_path / "file.txt")
    with pytest.raises(ChexplainError, match="not a chexplain result folder"):
        open_folder(tmp_path)
    half = tmp_path / "half"
    half.mkdir()
    (half / "audit.json").write_text(json.dumps({"classes": {}}))
    with pytest.raises(ChexplainError, match=r"without members.csv, store/store.json, store/index.csv"):
        open_folder(half)


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port 70000 must lie between 0 and 65535"),
    (["--host", "no such host.invalid"], "--host 'no such host.invalid'"),
])
def test_the_command_line_checks_its_options_in_one_line(demo_run, capsys, args, message):
    assert main(["view", str(demo_run), "--no-browser", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_command_line_refuses_a_folder_that_holds_no_result(tmp_path, capsys):
    assert main(["view", str(tmp_path), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path.resolve()}: not a chexplain result folder" in err


def test_files_are_served_only_from_inside_the_viewed_folder(demo_run, tmp_path):
    (demo_run / "explain" / "outside_link.png").unlink(missing_ok=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"TOP-SECRET-BYTES")
    with running(demo_run / "explain") as url:
        ok = get(url + "file?p=fig5_correct_incorrect.png")
        assert ok[0] == 200 and ok[2] == (demo_run / "explain" / "fig5_correct_incorrect.png").read_bytes()
        os.symlink(secret, demo_run / "explain" / "outside_link.png")
        try:
            for p in ("../compare/compare.json", "%2e%2e/compare/compare.json", str(secret),
                      "outside_link.png", "..%2F..%2Fetc%2Fpasswd", "explain.json/../../demo.json"):
                status, kind, body = get(url + "file?p=" + p)
                assert status == 404 and b"TOP-SECRET" not in body, p
        finally:
            (demo_run / "explain" / "outside_link.png").unlink()
        assert get(url + "static/../server.py")[0] == 404
        assert get(url + "static/server.py")[0] == 404
        assert get(url + "api/info", {"Host": "attacker.example:80"})[0] == 403


def test_viewing_writes_nothing_into_the_folder(demo_run):
    before = snapshot(demo_run)
    with running(demo_run) as url:
        get_json(url + "api/explain/item?s=0&i=0")
        get(url + "img/explain/map?s=0&i=0&m=gradcam&c=" + get_json(url + "api/explain/item?s=0&i=0")["classes"][0])
        get_json(url + "api/audit/points?s=2&c=Pleural%20Effusion&by=cluster")
        get(url + "img/audit/member?s=2&c=Pleural%20Effusion&r=0")
    assert snapshot(demo_run) == before


def test_an_explained_image_comes_with_every_stored_map_in_the_projects_colours(demo_run, demo_url):
    from chexplain.viz.figures import style
    from chexplain.viz.render import heatmap_rgb

    summary = json.loads((demo_run / "explain" / "explain.json").read_text())
    page = get_json(demo_url + "api/explain/page?s=0&offset=0&limit=10")
    assert page["total"] == len(summary["images"]) and page["items"][0]["identity"] == summary["images"][0]["identity"]
    d = get_json(demo_url + "api/explain/item?s=0&i=0")
    rec = summary["images"][0]
    assert d["classes"] == rec["explained"] and d["methods"] == summary["methods"]
    assert len(d["maps"]) == len(rec["explained"]) * len(summary["methods"]) and d["source"]
    m = d["maps"][0]
    npy = demo_run / "explain" / d["folder"] / m["method"].replace("-", "_") / (
        m["class"].lower().replace(" ", "_") + ".npy")
    R = np.load(npy)
    status, kind, body = get(demo_url + f"img/explain/map?s=0&i=0&m={m['method']}&c={m['class'].replace(' ', '%20')}")
    assert status == 200 and kind == "image/png"
    shown = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    st = style(m["method"])
    assert np.array_equal(shown, heatmap_rgb(R, cmap=st["cmap"], norm=st["norm"]))
    hi = np.abs(R).max() if st["norm"] == "symmetric" else np.percentile(np.abs(R), 99.5)
    if st["norm"] != "minmax":
        assert m["scale"]["high"] == pytest.approx(hi) and m["scale"]["low"] == pytest.approx(-hi)
    status, kind, body = get(demo_url + "img/explain/bg?s=0&i=0")
    assert status == 200 and Image.open(io.BytesIO(body)).mode == "L"


def test_a_methods_best_and_worst_items_are_the_extremes_of_items_csv(demo_run, demo_url):
    import pandas as pd

    items = pd.read_csv(demo_run / "compare" / "items.csv")
    ov = get_json(demo_url + "api/compare?s=1")
    method = ov["methods"][0]
    e = get_json(demo_url + f"api/compare/extremes?s=1&method={method}&metric=relevance_mass&n=3")
    mine = items[items["method"] == method]["relevance_mass"].dropna()
    assert e["n"] == len(mine)
    assert e["best"][0]["value"] == pytest.approx(mine.max())
    assert e["worst"][0]["value"] == pytest.approx(mine.min())
    assert ov["summary"][method]["relevance_mass"]["mean"] == pytest.approx(mine.mean())


def test_the_audit_scatter_and_the_csv_export_hold_the_members_of_members_csv(demo_run, demo_url):
    import pandas as pd

    members = pd.read_csv(demo_run / "audit" / "members.csv")
    mine = members[members["class"] == "Pleural Effusion"].reset_index(drop=True)
    pts = get_json(demo_url + "api/audit/points?s=2&c=Pleural%20Effusion&by=cluster")
    assert pts["n"] == len(mine)
    assert np.allclose(pts["x"], mine["x"], atol=1e-3) and [int(pts["levels"][c]) for c in pts["code"]] == list(mine["cluster"])
    sex = get_json(demo_url + "api/audit/points?s=2&c=Pleural%20Effusion&by=Sex")
    assert set(sex["levels"]) <= {"Female", "Male", "unknown"}
    req = urllib.request.Request(demo_url + "api/audit/export", method="POST",
                                 data=json.dumps({"s": 2, "c": "Pleural Effusion", "rows": [0, 2]}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.read().decode())))
    assert [r["image"] for r in rows] == [mine["image"][0], mine["image"][2]]
    assert [int(r["cluster"]) for r in rows] == [mine["cluster"][0], mine["cluster"][2]]
    status, kind, body = get(demo_url + "img/audit/member?s=2&c=Pleural%20Effusion&r=0&layer=image")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (64, 64)
    assert get(demo_url + "img/audit/member?s=2&c=Pleural%20Effusion&r=9999")[0] == 404
    assert get(demo_url + "api/audit/points?s=2&c=Nothing&by=cluster")[0] == 404
    assert get(demo_url + "api/explain/page?s=2")[0] == 400  # section 2 is the audit


def uses_pytorch(pid: int) -> bool:
    """Whether the process has PyTorch's library mapped (the viewer needs none)."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def test_the_command_serves_every_view_without_pytorch_and_stops_on_ctrl_c(demo_run):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "chexplain", "view", str(demo_run), "--no-browser",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert " at http://127.0.0.1:" in line
        url = line.split(" at ")[1].split()[0]
        assert get_json(url + "api/info")["kind"] == "demo"
        item = get_json(url + "api/explain/item?s=0&i=0")
        for m in item["maps"]:
            c = m["class"].replace(" ", "%20")
            assert get(url + f"img/explain/map?s=0&i=0&m={m['method']}&c={c}")[0] == 200
        assert get(url + "img/explain/bg?s=0&i=0")[0] == 200
        method = get_json(url + "api/compare?s=1")["methods"][0]
        get_json(url + f"api/compare/extremes?s=1&method={method}&metric=relevance_mass&n=3")
        for layer in ("image", "overlay"):
            assert get(url + f"img/audit/member?s=2&c=Pleural%20Effusion&r=0&layer={layer}")[0] == 200
        assert not uses_pytorch(proc.pid)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "stopped" in out and "Traceback" not in err


def test_sigterm_stops_the_server_as_cleanly_as_ctrl_c(demo_run):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "chexplain", "view", str(demo_run / "compare"), "--no-browser",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().split(" at ")[1].split()[0]
        assert get_json(url + "api/info")["kind"] == "compare"
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "stopped" in out and "Traceback" not in err


def test_a_100000_image_audit_opens_in_under_3_s_with_under_1_gb(tmp_path):
    from .synthetic import write_synthetic_audit

    folder = write_synthetic_audit(tmp_path / "big", 100_000)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "chexplain", "view", str(folder), "--no-browser",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().split(" at ")[1].split()[0]
        ov = get_json(url + "api/audit?s=0")
        cls = ov["classes"][0]["name"].replace(" ", "%20")
        pts = get_json(url + f"api/audit/points?s=0&c={cls}&by=cluster")
        get_json(url + f"api/audit/clusters?s=0&c={cls}")
        first_page = time.perf_counter() - t0
        for r in range(0, 100_000, 4_000):  # members of 25 shards, then another colouring
            assert get(url + f"img/audit/member?s=0&c={cls}&r={r}")[0] == 200
        get_json(url + f"api/audit/points?s=0&c={cls}&by=Site")
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss_mb = int(status.split("VmRSS:")[1].split()[0]) / 1024
        assert not uses_pytorch(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert pts["n"] == 100_000
    assert first_page < 3.0, f"first page after {first_page:.2f} s (server start included)"
    assert rss_mb < 1024, f"server RSS {rss_mb:.0f} MB"
