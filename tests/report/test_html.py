"""The HTML report: self-contained, escaped, every section present (parsed)."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
from PIL import Image

from chexplain.report.html import SECTIONS, write_report


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.srcs, self.links, self.tags, self.text = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(a.get("id"))
        if "src" in a:
            self.srcs.append(a["src"])
        if tag in ("link", "script"):
            self.links.append(tag)
        if "href" in a:
            self.links.append(a["href"])

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    p = Collect()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def _comparison():
    s = {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 12}
    metrics = ("pointing_game", "relevance_mass", "relevance_rank", "iou", "aopc_morf", "aopc_lerf", "aopc_gap")
    return {"summary": {m: {k: dict(s) for k in metrics} for m in ("lrp-epsilon", "gradcam")},
            "per_class": {m: {"Pleural Effusion": {**{k: 0.5 for k in metrics}, "n": 3}}
                          for m in ("lrp-epsilon", "gradcam")},
            "n_items": 3, "n_images": 2, "n_empty": 1, "classes": ["Pleural Effusion"],
            "config": {"patch": 8, "steps": 4, "baseline": "blur", "methods": ["lrp-epsilon", "gradcam"]},
            "randomisation": {m: {"layers": ["classifier", "features.conv0"], "n": 2,
                                  "spearman_abs": [0.9, 0.1], "ssim": [0.8, None]}
                              for m in ("lrp-epsilon", "gradcam")}}


def test_report_has_every_section_embeds_images_and_escapes(tmp_path):
    png = tmp_path / "fig.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    auroc = {"auroc": {"Cardiomegaly": 0.8, "Fracture": None}, "undefined": {"Fracture": "no positives"},
             "positives": {"Cardiomegaly": 3, "Fracture": 0}, "negatives": {"Cardiomegaly": 5, "Fracture": 8},
             "mean_auroc": 0.8, "defined": 1}
    mnist = {"study": "Bach et al. 2015", "data_source": "sample", "quick": True, "figures": ["fig.png"],
             "experiments": [{"experiment": "1", "net": "a", "iterations": 10, "paper_iterations": 100,
                              "test_accuracy": 0.9, "paper_accuracy": 0.98}]}
    out = write_report(tmp_path / "r.html", "demo <script>", [("x", "<b>&")], auroc=auroc,
                       figures=[("cap <i>", png)], comparison=_comparison(), comparison_dir=tmp_path,
                       mnist=mnist, mnist_dir=tmp_path)
    p = parse(out)
    assert p.sections == list(SECTIONS)
    assert p.srcs and all(s.startswith("data:image/png;base64,") for s in p.srcs)
    assert [link for link in p.links if not str(link).startswith("#")] == []  # no external assets
    assert "script" not in p.tags and "i" not in p.tags  # escaped text
    assert "<b>&" in "".join(p.text)
    text = "".join(p.text)
    assert "demo <script>" in text and "n/a (no positives)" in text
    assert "0.500 [0.400, 0.600] n=12" in text and "Pleural Effusion" in text
    assert "pointing game: map's maximum inside the finding (higher is better)" in text
    assert "(lower is better)" in text and "Who leads in this run" in text
    assert "too few items" not in text


def test_few_items_get_a_warning_not_an_interval(tmp_path):
    cmp = _comparison()
    cmp["summary"]["gradcam"]["pointing_game"].update(mean=0.75, n=4)
    text = "".join(parse(write_report(tmp_path / "r.html", "t", [], comparison=cmp)).text)
    assert "0.750 n=4 (too few items for an interval)" in text and "Warning:" in text
    assert "pointing game: gradcam leads (0.750; next lrp-epsilon 0.500)." in text


def test_table2_study_column_complete_and_artefacts_marked(tmp_path):
    from chexplain.data.chexpert import OBSERVATIONS
    from chexplain.evaluate.auroc import per_class_auroc

    rng = np.random.default_rng(0)
    t = (rng.random((60, 14)) < 0.3).astype(float)
    t[:, OBSERVATIONS.index("Fracture")] = 0
    auroc = per_class_auroc(t, t + rng.normal(size=t.shape))
    p = parse(write_report(tmp_path / "r.html", "t", [], auroc=auroc))
    text = "\n".join(p.text)
    cells = [c.strip() for c in p.text]
    for value in ("0.79", "0.60", "0.80", "0.87", "0.53", "0.51", "0.50", "0.68", "0.91", "0.89"):
        assert value in cells, value  # every study value as its own cell
    assert "1.00 (artefact: undefined AUROC printed as 1.00)" in cells
    assert "0.00 (artefact: undefined AUROC printed as 0.00)" in cells
    assert "not given" not in text and "n/a (no positives)" in cells
    assert "Study (Alam 2022), literature" in cells and "ours (this run)" in cells
    assert "not comparable" in text


def test_missing_inputs_say_so(tmp_path):
    p = parse(write_report(tmp_path / "r.html", "t", []))
    assert p.sections == list(SECTIONS)
    text = "".join(p.text)
    assert "No comparison was run" in text and "MNIST reproduction was not run" in text


def test_tied_leaders_are_named_together_and_the_runner_up_is_another_method():
    from chexplain.evaluate.compare import leaders_text

    cmp = _comparison()
    summ = cmp["summary"]
    summ["epsilon-plus-flat"] = {k: dict(v) for k, v in summ["gradcam"].items()}
    first = next(iter(summ))
    for m in summ:
        summ[m]["pointing_game"].update(mean=0.25)
    summ[first]["pointing_game"].update(mean=0.75)
    summ["gradcam"]["pointing_game"].update(mean=0.75)
    line = next(t for t in leaders_text(cmp, ["pointing_game"]).splitlines())
    assert line.startswith(f"pointing game: {first} and gradcam lead (0.750; next epsilon-plus-flat 0.250"), line
