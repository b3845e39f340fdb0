"""The audit suite's reading of a report (``benchmarks/_audit_suite.py``,
``benchmarks/_audit_acceptance.py``): flagged groups from ``flagged`` or a ``verdict``, and the
outcome of a kind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
acceptance = pytest.importorskip("_audit_acceptance")
suite = pytest.importorskip("_audit_suite")


MARKER = {"a": True, "b": True, "c": True, "d": True, "x": False, "y": False}


def _group(members, flagged=None, verdict=None, id=0):
    g = {"id": id, "size": len(members), "members": members, "clusters": [id], "kind": "bright",
         "counterfactual": {"effect": 2.0, "ci_low": 1.5, "ci_high": 2.5, "floor": 0.5,
                            "p_value": 0.001}}
    if flagged is not None:
        g["flagged"] = flagged
    if verdict is not None:
        g["verdict"] = verdict
    return g


def _audit(groups):
    members = sorted(MARKER)  # every image audited
    rest = [m for m in members if not any(m in g["members"] for g in groups)]
    clusters = [dict(g, suspect=True, strategy=g["id"], regions={}) for g in groups]
    clusters.append({"id": 9, "size": len(rest), "members": rest, "suspect": False,
                     "strategy": None, "kind": None, "flagged": False, "counterfactual": None,
                     "regions": {}})
    return {"classes": {"E": {"population": "positives", "clusters": clusters,
                              "strategies": groups}}}



@pytest.mark.parametrize("group, flagged", [
    ({"flagged": True}, True), ({"flagged": False, "verdict": "shortcut"}, False),
    ({"verdict": "Flagged"}, True), ({"verdict": "distinct strategy"}, False),
    ({"verdict": "not a suspect"}, False), ({}, False)])
def test_flagged_from_either_key(group, flagged):
    assert acceptance.is_flagged(group) is flagged


@pytest.mark.parametrize("key", ["flagged", "verdict"])
def test_purity_recall_and_outcome(key):
    mark = {"flagged": True} if key == "flagged" else {"verdict": "flagged"}
    found = _group(["a", "b", "c", "x"], **mark)
    s = acceptance.score(_audit([found]), "E", MARKER)
    assert s["strategies"][0]["purity"] == pytest.approx(0.75)
    assert s["strategies"][0]["recall"] == pytest.approx(0.75)
    clean = acceptance.score(_audit([_group(["x"], flagged=False)]), "E", MARKER)
    rec = {"shortcut": s | {"strength": {"prob_gap": 0.3}}, "clean": clean | {"strength": {}}}
    v = suite.verdict(rec)
    assert (v["flagged"], v["found"], v["outcome"]) == (1, False, "miss")  # purity 0.75 < 0.8
    pure = acceptance.score(_audit([_group(["a", "b", "c"], **mark)]), "E", MARKER)
    v = suite.verdict({"shortcut": pure | {"strength": {"prob_gap": 0.3}}, "clean": clean})
    assert (v["found"], v["clean_flagged"], v["outcome"]) == (True, 0, "pass")
    alarm = acceptance.score(_audit([_group(["x"], **mark)]), "E", MARKER)
    v = suite.verdict({"shortcut": pure | {"strength": {"prob_gap": 0.3}}, "clean": alarm})
    assert (v["clean_flagged"], v["outcome"]) == (1, "false alarm")
    v = suite.verdict({"shortcut": clean | {"strength": {"prob_gap": 0.01}}, "clean": clean})
    assert v["outcome"] == "shortcut not learned"
