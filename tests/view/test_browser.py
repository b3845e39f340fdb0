"""The viewer in a real headless Chromium (Debian's ``chromium``, driven by Playwright): the
pages load, an image opens with its maps, zoom and opacity act on every panel, the audit's
scatter selects members and exports them, and user strings stay text."""

from __future__ import annotations

import csv
import io
import shutil

import pytest

from .conftest import HOSTILE, HOSTILE_META, running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    pg = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg.errors = []
    pg.dialogs = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    yield pg
    assert pg.errors == [], pg.errors
    pg.close()


def ready(page, state: str) -> None:
    page.wait_for_selector(f"#app[data-state='{state}']", state="attached", timeout=20_000)


def test_the_grid_lists_the_images_and_a_click_opens_every_map(page, demo_url, demo_run):
    import json

    summary = json.loads((demo_run / "explain" / "explain.json").read_text())
    page.goto(demo_url + "#/s/0/explain")
    ready(page, "explain-grid")
    cards = page.locator("#explain-grid a.card")
    assert cards.count() == len(summary["images"])
    assert summary["images"][0]["identity"] in cards.first.inner_text()
    cards.first.click()
    ready(page, "explain-item")
    rec = summary["images"][0]
    assert page.locator("#item-title").inner_text() == rec["identity"]
    panels = page.locator("table.maps .panel")
    assert panels.count() == len(rec["explained"]) * len(summary["methods"])
    page.wait_for_function("() => [...document.querySelectorAll('table.maps img.layer')].every(i => i.complete && i.naturalWidth > 0)")
    page.locator("#opacity").fill("0.25")
    opacities = page.eval_on_selector_all("table.maps img.layer", "ls => ls.map(l => l.style.opacity)")
    assert opacities and set(opacities) == {"0.25"}
    box = panels.first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -200)
    page.wait_for_function("() => document.querySelector('table.maps .stage').style.transform.includes('scale')")
    transforms = page.eval_on_selector_all("table.maps .stage", "ss => ss.map(s => s.style.transform)")
    assert len(set(transforms)) == 1 and "scale(1.25)" in transforms[0]  # all panels in step


def test_the_comparison_table_opens_a_methods_best_and_worst_items(page, demo_url, demo_run):
    import pandas as pd

    methods = list(dict.fromkeys(pd.read_csv(demo_run / "compare" / "summary.csv")["method"]))
    page.goto(demo_url + "#/s/1/compare")
    ready(page, "compare")
    assert page.locator("#compare-table tr.method").count() == len(methods)
    page.locator("#compare-table button", has_text=methods[-1]).click()
    ready(page, "compare-extremes")
    assert methods[-1] in page.locator("#extremes h3").inner_text()
    assert page.locator("#extremes [data-kind=best] .card").count() > 0
    assert page.locator("#extremes [data-kind=worst] .card").count() > 0


def test_the_audit_scatter_selects_members_shows_them_and_exports_them(page, demo_url, demo_run):
    import pandas as pd

    members = pd.read_csv(demo_run / "audit" / "members.csv")
    n = int((members["class"] == "Pleural Effusion").sum())
    page.goto(demo_url + "#/s/2/audit/Pleural%20Effusion")
    ready(page, "audit")
    drawn = page.evaluate("""() => { const c = document.getElementById('scatter');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let k = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) k++; return k; }""")
    assert drawn > 50  # the points are painted
    box = page.locator("#scatter").bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    for dx, dy in ((box["width"] - 2, 2), (box["width"] - 2, box["height"] - 2), (2, box["height"] - 2), (2, 2)):
        page.mouse.move(box["x"] + dx, box["y"] + dy, steps=4)
    page.mouse.up()
    ready(page, "audit-selection")
    assert page.locator("#selection h3").first.inner_text() == f"{n} member(s) selected"
    assert page.locator("#members .member").count() == min(n, 24)
    with page.expect_download() as dl:
        page.locator("#export").click()
    rows = list(csv.DictReader(io.StringIO(open(dl.value.path(), encoding="utf-8").read())))
    assert len(rows) == n and set(r["image"] for r in rows) == set(members[members["class"] == "Pleural Effusion"]["image"])
    page.locator("#members .member").first.click()
    page.wait_for_selector("#member .panel img.layer")
    assert page.locator("#member h3").inner_text() == rows[0]["image"]
    # one legend entry: its cluster's members only
    page.locator("#legend .swatch").first.click()
    ready(page, "audit-selection")
    size0 = int((members[members["class"] == "Pleural Effusion"]["cluster"] == 0).sum())
    assert page.locator("#selection h3").first.inner_text() == f"{size0} member(s) selected"


def test_a_class_named_script_is_shown_as_text_and_never_runs(page, hostile_audit, hostile_explain):
    with running(hostile_audit) as url:
        page.goto(url + "#/s/0/audit")
        ready(page, "audit")
        options = page.eval_on_selector_all("#audit-class option", "os => os.map(o => o.textContent)")
        assert options[0] == HOSTILE
        assert page.locator("#class-note").inner_text().startswith(HOSTILE + ":")
        page.locator("#colour-by").select_option("Site")
        page.wait_for_function("t => document.getElementById('legend').textContent.includes(t)",
                               arg=HOSTILE_META)  # the markup arrives as text
        assert any(t.startswith(HOSTILE_META) for t in page.locator("#legend .swatch").all_inner_texts())
        page.locator("#legend .swatch", has_text=HOSTILE_META).click()  # that site's members
        ready(page, "audit-selection")
        page.locator("#members .member").first.click()
        page.wait_for_selector("#member table")
        assert page.locator("#member h3").inner_text().startswith("<b>img")
        assert HOSTILE_META in page.locator("#member table").inner_text()
        scripts = page.eval_on_selector_all("script", "ss => ss.map(s => s.getAttribute('src'))")
        assert all(s and s.startswith("/static/") for s in scripts)
        assert page.locator("#app img[src='x']").count() == 0 and page.locator("#app b").count() == 0
    with running(hostile_explain) as url:
        page.goto(url + "#/s/0/explain")
        ready(page, "explain-grid")
        assert HOSTILE in page.locator("#explain-grid .caption").first.inner_text()
        page.goto(url + "#/s/0/explain/0")
        ready(page, "explain-item")
        assert page.locator("#item-title").inner_text() == HOSTILE
        assert HOSTILE in page.locator("table.data").inner_text()
    assert page.dialogs == []
