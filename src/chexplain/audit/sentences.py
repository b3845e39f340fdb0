"""The audit's verdicts and the sentences that explain them, one per cluster and strategy.

A cluster or strategy with a distinctive region (:mod:`chexplain.audit.distinctive`) is

- **flagged** when removing its distinctive region, less each member's own finding mask,
  changes the class's logit more than removing as many random cells (the counterfactual test,
  beyond its floor; :mod:`chexplain.audit.member_test`): a Clever-Hans candidate;
- a **distinct strategy** when the test says the model uses the region and no finding mask
  is known: where it is, is reported for a human to judge;
- **not a suspect** otherwise, with the reason (no positive relevance, no region, no
  significant effect, or the region lies on the members' findings: nothing left to test).
"""

from __future__ import annotations

from typing import Any

from .member_test import MemberTest

FLAGGED, DISTINCT, NOT = "flagged", "distinct strategy", "not a suspect"


def verdict(test: MemberTest, overlap: float | None, evidence_overlap: float,
            alpha: float) -> tuple[str, str]:
    """(verdict, why) of a tested region (:class:`~chexplain.audit.member_test.MemberTest`);
    ``overlap``: the region's mean share on its members' finding masks (None: none known)."""
    cf = test.result
    if not cf:
        if test.on_finding:
            return NOT, (f"its distinctive region lies on the finding's evidence (on the finding "
                         f"masks of {test.on_finding} of the {test.on_finding + test.tested} "
                         "members tested)")
        return NOT, "too few members with positive relevance to test its distinctive region"
    if not cf["used"]:
        e, f, p = cf["effect"], cf["floor"], cf["p_value"]
        stats = (f"effect {e:.2f} {'≤' if e <= f else '>'} floor {f:.2f}, p = {p:.2g}"
                 f"{f' ≥ {alpha:g}' if p >= alpha else ''}")
        if overlap is not None and overlap >= evidence_overlap:
            return NOT, (f"its distinctive region lies on the finding's evidence ({overlap:.0%} of "
                         f"it on the finding masks); removing the rest has no significant effect "
                         f"({stats})")
        return NOT, f"no significant effect of removing its distinctive region ({stats})"
    if overlap is None:
        return DISTINCT, ("removing its distinctive region changes the logit significantly; no "
                          "finding mask is known, so whether it is the finding or a shortcut is "
                          "for a human to judge")
    aside = (f"; {test.on_finding} member(s) whose region lies wholly on their finding were "
             "left out" if test.on_finding else "")
    return FLAGGED, ("removing its distinctive region, where it lies off each member's finding "
                     "mask, changes the logit significantly" + aside)


def cf_text(cf: dict[str, Any] | None) -> str:
    """The counterfactual result in one clause."""
    if not cf:
        return ""
    return (f"removing it lowers the logit by {cf['logit_drop_hot']:.2f} vs "
            f"{cf['logit_drop_random']:.2f} for as many random cells (effect {cf['effect']:.2f} "
            f"[{cf['ci_low']:.2f}, {cf['ci_high']:.2f}], p = {cf['p_value']:.2g}, floor "
            f"{cf.get('floor', 0.0):.2f})")


def _where(region: dict[str, Any] | None) -> str:
    if not region:
        return "no distinctive region"
    s = f"distinctive evidence in the {region['words']}"
    if region.get("share") is not None:
        s += f" ({region['share']:.0%} of its members' positive relevance there"
        s += (f", the other clusters' members {region['share_others']:.0%})"
              if region.get("share_others") is not None else ")")
    return s


def cluster_sentence(c: dict[str, Any], n_total: int) -> str:
    s = f"cluster {c['id']} ({c['size']} images, {c['size'] / n_total:.0%}): {_where(c['distinctive_region'])}"
    if c.get("strategy") is not None:
        return s + f"; part of strategy {c['strategy']}"
    cf = cf_text(c.get("counterfactual"))
    return s + (f"; {cf}" if cf else "") + f"; {c['verdict']}: {c['why']}"


def strategy_sentence(st: dict[str, Any], n_total: int) -> str:
    ids = ", ".join(str(i) for i in st["clusters"])
    s = (f"strategy {st['id']} (cluster{'s' if len(st['clusters']) > 1 else ''} {ids}; "
         f"{st['size']} images, {st['size'] / n_total:.0%}): {_where(st['distinctive_region'])}")
    cf = cf_text(st.get("counterfactual"))
    return s + (f"; {cf}" if cf else "") + f"; {st['verdict']}: {st['why']}"
