"""`chexplain demo --quick`: every step end to end, and the report it writes."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from chexplain.cli import main
from chexplain.report.html import SECTIONS


def test_demo_quick_end_to_end(tmp_path, capsys, figure_audit):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    assert "[demo] expected duration: about" in printed.splitlines()[0]
    # the study's Figs. 4-7, every figure checked for its size and overlapping or clipped text
    checked = figure_audit.assert_clean(out)
    assert {"fig4_lrp_rules.png", "fig5_correct_incorrect.png", "fig6_top3.png",
            "fig7_gradcam_classes.png", "roc_curves.png", "aopc_curves.png", "localisation.png",
            "randomisation.png"} <= set(checked), checked
    assert not (out / "data" / "phantom_test" / "train.csv").exists()  # test labels: test.csv
    res = json.loads((out / "demo.json").read_text())
    assert set(res["seconds"]) >= {"phantom", "train", "auroc", "explain", "compare", "mnist", "total"}
    audit = json.loads((out / "audit" / "audit.json").read_text())  # the small SpRAy audit
    assert "audit" in res["seconds"] and set(audit["classes"]) == {"Pleural Effusion", "Support Devices"}
    cmp = json.loads((out / "compare" / "compare.json").read_text())
    assert set(cmp["summary"]) == {"lrp-epsilon", "gradcam"}
    for m in cmp["summary"].values():
        pg = m["pointing_game"]
        assert pg["mean"] is None or (0 <= pg["ci_low"] <= pg["mean"] <= pg["ci_high"] <= 1)
    for f in ("summary.csv", "items.csv", "per_class.csv", "aopc_curves.png", "localisation.png",
              "randomisation.png"):
        assert (out / "compare" / f).is_file(), f

    ids = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "section":
                ids.append(dict(attrs)["id"])

    P().feed((out / "report.html").read_text(encoding="utf-8"))
    assert ids == list(SECTIONS)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 5
    assert "No comparison was run" not in html and "was not run" not in html
    assert "Who leads in this run" in html and "Fig. 4, LRP-z" in html


def test_demo_times_its_thread_count_and_restores_the_callers(capsys):
    import torch

    from chexplain.jobs.demo import expected_seconds, quick_config

    before = torch.get_num_threads()
    try:
        est, per_image, threads = expected_seconds(quick_config())
        assert threads in {before, max(1, before // 2), 1} and torch.get_num_threads() == threads
        assert est > 0 and per_image > 0
        _, _, fixed = expected_seconds(quick_config(threads=1))
        assert fixed == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert main(["demo", "--quick", "--threads", "0", "--out", "unused"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["chexplain: error: demo: --threads must be at least 1, got 0"], err
    assert torch.get_num_threads() == before
