"""Per-class AUROC: scikit-learn agreement, undefined classes, masks, Table 2, ROC figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from chexplain.data.chexpert import OBSERVATIONS
from chexplain.errors import InputError
from chexplain.evaluate.auroc import (COMPETITION, per_class_auroc,
                                      save_roc_curves, table2_markdown)
from chexplain.io import write_json


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, 14)) < 0.3).astype(np.float32)
    scores = targets * rng.uniform(0.0, 2.0, 14) + rng.normal(size=(n, 14))
    return targets, scores


def test_matches_sklearn_and_undefined_classes_are_null():
    targets, scores = _data()
    targets[:, OBSERVATIONS.index("Fracture")] = 0  # no positives
    targets[:, OBSERVATIONS.index("Pleural Other")] = 1  # no negatives
    r = per_class_auroc(targets, scores)
    for c, name in enumerate(OBSERVATIONS):
        if name in ("Fracture", "Pleural Other"):
            continue
        assert r["auroc"][name] == pytest.approx(roc_auc_score(targets[:, c], scores[:, c]))
    assert r["auroc"]["Fracture"] is None and r["undefined"]["Fracture"] == "no positives"
    assert r["auroc"]["Pleural Other"] is None
    assert r["undefined"]["Pleural Other"] == "no negatives"
    defined = [v for v in r["auroc"].values() if v is not None]
    assert r["defined"] == 12 and r["mean_auroc"] == pytest.approx(np.mean(defined))
    assert r["competition_mean_auroc"] == pytest.approx(np.mean([r["auroc"][n] for n in COMPETITION]))
    assert r["positives"]["Fracture"] == 0 and r["negatives"]["Fracture"] == 200
    # JSON: null, never 0.0 / 1.0
    text = json.dumps(r)
    assert json.loads(text)["auroc"]["Fracture"] is None


def test_mask_excludes_entries_and_can_make_a_class_undefined():
    targets, scores = _data()
    mask = np.ones_like(targets)
    c = OBSERVATIONS.index("Edema")
    mask[:100, c] = 0
    r = per_class_auroc(targets, scores, mask)
    assert r["auroc"]["Edema"] == pytest.approx(roc_auc_score(targets[100:, c], scores[100:, c]))
    mask[:, c] = 0
    r = per_class_auroc(targets, scores, mask)
    assert r["auroc"]["Edema"] is None and r["undefined"]["Edema"] == "no labels"
    with pytest.raises(InputError, match="same N x C"):
        per_class_auroc(targets[:, :3], scores)
    with pytest.raises(InputError, match="NaN"):
        per_class_auroc(targets, np.full_like(scores, np.nan))


#: The study's Table 2 as printed (shared/docs/study-tables.md), the artefacts without their mark.
STUDY_TEXT = {"No Finding": "0.79", "Enlarged Cardiomediastinum": "0.60", "Cardiomegaly": "0.80",
              "Lung Opacity": "0.87", "Lung Lesion": "0.53", "Edema": "0.87", "Consolidation": "0.51",
              "Pneumonia": "0.50", "Atelectasis": "0.53", "Pneumothorax": "0.68",
              "Pleural Effusion": "0.91", "Pleural Other": "1.00", "Fracture": "0.00",
              "Support Devices": "0.89"}


def test_table2_layout_and_roc_png(tmp_path):
    targets, scores = _data()
    targets[:, OBSERVATIONS.index("Fracture")] = 0
    r = per_class_auroc(targets, scores)
    md = table2_markdown(r)
    lines = md.splitlines()
    assert lines[0].startswith("| Observation | Study (Alam 2022), literature | Irvin 2019, literature |")
    rows = {line.split("|")[1].strip(): line for line in lines[2:16]}
    assert list(rows) == list(OBSERVATIONS)
    study = {name: line.split("|")[2].strip() for name, line in rows.items()}
    # the study's Table 2 in full (shared/docs/study-tables.md), its two artefacts marked
    assert study == {**STUDY_TEXT, "Pleural Other": "1.00 (artefact: undefined AUROC printed as 1.00)",
                     "Fracture": "0.00 (artefact: undefined AUROC printed as 0.00)"}
    assert "not given" not in md
    assert "n/a (no positives)" in rows["Fracture"]
    assert "0.941" in rows["Edema"] and "0.854" in rows["Cardiomegaly"]
    assert "| 0.73 (0.76 weighted) |" in md and "n/a" not in rows["Cardiomegaly"]
    assert "average 0.68" in md  # the study's printed values do not average to its 0.73
    assert "literature" in md and "not comparable" in md
    write_json(tmp_path / "r.json", r)  # allow_nan=False: no NaN sneaks in
    png = save_roc_curves(tmp_path / "roc.png", targets, scores)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(png).size[0] > 1000


def test_roc_figure_draws_defined_classes_only_and_lists_the_rest(tmp_path, monkeypatch, figure_audit):
    from matplotlib.figure import Figure

    targets, scores = _data()
    targets[:, OBSERVATIONS.index("Fracture")] = 0
    targets[:, OBSERVATIONS.index("Pleural Other")] = 1
    drawn = []
    save = Figure.savefig  # figure_audit's wrapper: the layout is checked too
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self), save(self, *a, **k))[1])
    save_roc_curves(tmp_path / "roc.png", targets, scores)
    (fig,) = drawn
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes]
    assert titles == [n for n in OBSERVATIONS if n not in ("Fracture", "Pleural Other")]
    notes = [t.get_text() for t in fig.texts]
    assert notes == ["AUROC undefined, not drawn: Pleural Other (no negatives), Fracture (no positives)"]
    figure_audit.assert_clean(tmp_path)
