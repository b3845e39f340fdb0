"""The audit finds a dim marker wherever it sits (inside the body or in the air), from a
hand-built model's LRP maps, without being told where: a flagged strategy of the marked
images; a model that never reads the marker flags nothing; a finding mask over the marker's
place leaves it to the matched test; the report names the region in
words and draws a colour bar beside every relevance image."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
import torch

from chexplain.audit.analysis import AnalysisConfig, audit_class
from chexplain.audit.counterfactual import CounterfactualConfig
from chexplain.audit.distinctive import name_region, place, unite
from chexplain.audit.spray import SprayConfig

from .shortcut_model import ShortcutNet, audit_data, phantoms

#: where the marker's top-left corner is drawn (row0, col0, row1, col1) and what the report
#: must call the place
PLACES = {"upper left, in the body": ((12, 12, 22, 22), ("upper", "inside the body")),
          "lower right, in the body": ((34, 36, 44, 46), ("inside the body",)),
          "upper right, in the air": ((1, 54, 3, 57), ("upper right, outside the body",))}


@lru_cache(maxsize=None)
def _audit(box: tuple[int, int, int, int], marker_weight: float = 4.0, cover: str = ""):
    ph = phantoms(box)
    model = ShortcutNet(marker_weight=marker_weight).eval()
    data = audit_data(model, ph)
    n = len(ph.labels)
    findings = None
    if cover:  # a finding mask that also covers every place the marker can be ("all") or
        findings = ph.finding.copy()  # the left half of the places ("half": a drain on a pneumothorax)
        right = box[3] + 6 if cover == "all" else (box[1] + box[3] + 6) // 2
        findings[:, box[0]:box[2] + 6, box[1]:right] = True
    config = AnalysisConfig(spray=SprayConfig(embedding="spectral"),
                            counterfactual=CounterfactualConfig(permutations=999, bootstrap=200))
    a = audit_class("Effusion", 0, data, ph.labels[:, None].astype(float),
                    pd.DataFrame(index=range(n)), [f"img{i}" for i in range(n)], config,
                    lambda q: torch.from_numpy(ph.images[q])[:, None], model, 0, findings=findings)
    return ph, a


def _scores(ph, group) -> tuple[float, float]:
    marked = {f"img{i}" for i in np.flatnonzero((ph.labels == 1) & ph.marked)}
    m = set(group["members"])
    return len(m & marked) / len(m), len(m & marked) / len(marked)


@pytest.mark.parametrize("where", sorted(PLACES))
def test_a_dim_marker_is_flagged_wherever_it_is(where):
    box, words = PLACES[where]
    ph, a = _audit(box)
    flagged = [s for s in a.strategies if s["flagged"]]
    best = max(flagged, key=lambda s: min(_scores(ph, s)))
    purity, recall = _scores(ph, best)
    assert purity >= 0.8 and recall >= 0.7, (purity, recall)
    cf = best["counterfactual"]
    assert best["verdict"] == "flagged" and cf["p_value"] < 0.01 and cf["effect"] > cf["floor"]
    region = best["distinctive_region"]
    assert region["evidence_overlap"] < 0.5 and all(w in region["words"] for w in words), region["words"]
    assert f"strategy {best['id']}" in best["sentence"] and region["words"] in best["sentence"]
    assert "flagged: removing its distinctive region" in best["sentence"]
    for c in a.clusters:  # the finding's clusters: on the finding's evidence, said why
        assert c["why"] and (c["strategy"] is None) == (c["verdict"] == "not a suspect")
        if c["verdict"] == "not a suspect":
            assert "finding's evidence" in c["why"] or "no significant effect" in c["why"]
            assert c["verdict"] in c["sentence"] and c["why"] in c["sentence"]


def test_a_model_that_never_reads_the_marker_flags_nothing():
    ph, a = _audit(PLACES["upper left, in the body"][0], marker_weight=0.0)
    assert not any(c["flagged"] for c in a.clusters) and not any(s["flagged"] for s in a.strategies)
    for c in a.clusters:  # what it does use is the finding, and it says so
        assert c["verdict"] == "not a suspect" and "finding's evidence" in c["why"]


def test_a_finding_mask_over_the_marker_does_not_hide_it():
    """A finding mask over every place the marker can be leaves nothing off the finding to
    test; the matched test still tells the marker from the finding: the marked images lose
    more than images with the mask over the same cells. A cluster it does not flag says why,
    with both tests' numbers."""
    box = PLACES["upper left, in the body"][0]
    ph, a = _audit(box, cover="all")
    flagged = [s for s in a.strategies if s["flagged"]]
    assert flagged
    for st in flagged:
        assert _scores(ph, st)[0] == 1.0  # marked images only
        cf = st["counterfactual"]
        assert cf["control"] == "matched images" and cf["effect"] > cf["floor"]
        assert "holds more than the finding" in st["why"]
    for c in a.clusters:
        if c["verdict"] == "not a suspect" and c["counterfactual"]:
            assert "lies on the finding's evidence (100% of it on the finding masks)" in c["why"]
            assert "not significantly larger (effect" in c["why"]
            assert c["counterfactual"]["control"] == "matched images"


def test_a_marker_half_on_the_finding_is_tested_off_it():
    """A finding mask over the left half of the marker's places (a drain on a pneumothorax):
    each member's test removes only the pixels its own finding mask leaves free, the markers
    reaching off the mask are still flagged, those under it are excused with the reason, and
    every marked image is one or the other."""
    box = PLACES["upper left, in the body"][0]
    ph, a = _audit(box, cover="half")
    flagged = [s for s in a.strategies if s["flagged"]]
    assert flagged
    best = max(flagged, key=lambda s: min(_scores(ph, s)))
    assert _scores(ph, best)[0] >= 0.8
    cf = best["counterfactual"]
    assert "off each member's finding mask" in best["why"] and cf["effect"] > cf["floor"]
    excused = [c for c in a.clusters if c["verdict"] == "not a suspect" and "finding's evidence" in c["why"]]
    assert excused
    marked = {f"img{i}" for i in np.flatnonzero((ph.labels == 1) & ph.marked)}
    seen = set(best["members"]) | {m for c in excused for m in c["members"]}
    assert len(seen & marked) >= 0.9 * len(marked)


def test_region_words():
    assert place([0, 0, 5, 5], 64) == "upper left" and place([58, 58, 63, 63], 64) == "lower right"
    assert place([30, 30, 33, 33], 64) == "centre" and place([30, 0, 33, 5], 64) == "middle left"
    assert place([0, 30, 5, 33], 64) == "upper centre"
    assert name_region([12, 14, 17, 19], 64, 0.9) == "upper left, inside the body, 6×6 px at 64 px"
    assert name_region([0, 58, 3, 63], 64, 0.1, 0.8) == \
        "upper right, outside the body, on near-white pixels, 4×6 px at 64 px"
    a = np.zeros((8, 8), bool)
    b, c = a.copy(), a.copy()
    a[0, 0], b[0, 7], c[0, 2] = True, True, True
    assert unite({0: a, 1: b, 2: c}, 1) == [[0], [1], [2]]  # a one-cell gap, margin 1: apart
    assert unite({0: a, 1: b, 2: c}, 2) == [[0, 2], [1]]
    assert unite({0: a, 1: b, 2: c}, 1, mirrored=True) == [[0, 1], [2]]


def test_report_figures_carry_colour_bars_and_information_only(tmp_path):
    import matplotlib.pyplot as plt

    from chexplain.audit import figures
    from chexplain.audit.report import write_outputs

    ph, a = _audit(PLACES["upper left, in the body"][0])
    st = next(s for s in a.strategies if s["flagged"])
    built = [figures.strategy_figure(a, st), figures.prototypes_figure(a)]
    for fig in built:
        images = [im for ax in fig.axes for im in ax.images if im.get_cmap().name == "bwr"]
        assert images and all(im.colorbar is not None for im in images)
        for im in images:  # symmetric about zero at the largest |R| of the drawn map
            lo, hi = im.get_clim()
            assert lo == -hi and hi == pytest.approx(float(np.abs(im.get_array()).max()))
        assert any(ax.collections for ax in fig.axes)  # the region's outline
    assert len(built[0].axes) == 2 * (1 + len(a.examples[st["id"]])) and len(a.examples[st["id"]]) == 8
    everyone = {"label": np.array(["positive"] * len(a.positions)), "Site": np.array(["A", "B"] * 30)}
    emb = figures.embedding_figure(a, everyone)
    titles = [ax.get_title() for ax in emb.axes]
    assert len(titles) == 2 and not any(t.endswith(": label") for t in titles)
    for fig in built + [emb]:
        plt.close(fig)
    n = len(ph.labels)
    write_outputs(tmp_path, [a], {"Effusion": 0}, [f"img{i}" for i in range(n)], {"x": 1},
                  {}, ph.labels[:, None].astype(float))
    html = (tmp_path / "audit.html").read_text()
    assert "Flagged strategies" in html and st["distinctive_region"]["words"] in html
    assert any(p.name.endswith(f"strategy{st['id']}.png") for p in (tmp_path / "figures").iterdir())
    assert html.count("data:image/png;base64,") == 3 + len(a.strategies)


def test_the_distinctive_region_keeps_every_strong_part():
    from chexplain.audit.distinctive import distinctive_cells

    d = np.zeros((64, 64))
    d[0:8, 0:8] = 1.0  # a tag on the left: cells (0-1, 0-1) of the 16-grid, D 16 each
    d[0:8, 56:64] = 0.8  # … and on the right: 80 % of it
    d[32:36, 32:36] = 0.4  # above 0.3 × max, but 10 % of the top part's sum: dropped
    d[48:52, 8:12] = 0.1  # below 0.3 × max
    r = distinctive_cells(d, 16, 0.3, 0.15)
    want = np.zeros((16, 16), bool)
    want[0:2, 0:2] = want[0:2, 14:16] = True
    assert np.array_equal(r, want)
    assert distinctive_cells(d, 16, 0.3, 4 / 256).sum() == 4 and distinctive_cells(d, 16, 0.3, 4 / 256)[0:2, 0:2].all()
    assert distinctive_cells(-d, 16, 0.3, 0.15) is None


def test_maps_without_evidence_are_kept_apart_from_spray():
    from chexplain.audit.analysis import _cluster
    from chexplain.audit.spray import spray

    from .synthetic import planted_maps

    maps, truth = planted_maps((30, 20), seed=1)
    zeros = np.zeros((12, 32, 32))
    allm = np.concatenate([maps, zeros])
    evidence = np.arange(len(allm)) < len(maps)
    r = _cluster(allm, evidence, AnalysisConfig(spray=SprayConfig(embedding="spectral")))
    alone = spray(maps, SprayConfig(embedding="spectral"))
    assert r.n_clusters == alone.n_clusters + 1 and np.array_equal(r.labels[:len(maps)], alone.labels)
    assert (r.labels[len(maps):] == alone.n_clusters).all() and np.isnan(r.embedding[len(maps):]).all()
    assert np.array_equal(r.eigenvalues, alone.eigenvalues) and not r.prototypes[-1].any()
    assert r.typical[-1] == list(range(len(maps), len(maps) + 4)) and "12 map(s) without" in r.note
    off = _cluster(allm, evidence, AnalysisConfig(evidence_only=False, spray=SprayConfig(embedding="spectral")))
    assert len(off.labels) == len(allm) and not np.isnan(off.embedding).any()


def test_regions_in_any_corner_coincide_as_mirror_images():
    from chexplain.audit.distinctive import coincide

    a = np.zeros((8, 8), bool)
    a[0, 0] = True
    for b in (a[::-1].copy(), a[:, ::-1].copy(), a[::-1, ::-1].copy()):
        assert coincide(a, b, 0, mirrored=True) and not coincide(a, b, 1)
    middle = np.zeros((8, 8), bool)
    middle[4, 4] = True
    assert not coincide(a, middle, 1, mirrored=True)
