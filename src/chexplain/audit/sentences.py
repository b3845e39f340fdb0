"""The audit's verdicts and the sentences that explain them, one per cluster and strategy.

A cluster or strategy with a distinctive region (:mod:`chexplain.audit.distinctive`) is

- **flagged** when removing its distinctive region, less each member's own finding mask,
  changes the class's logit more than removing as many random cells (the counterfactual test,
  beyond its floor; :mod:`chexplain.audit.member_test`), or, for a region lying partly on the
  findings, when removing it lowers the members' logit more than the same cells lower that of
  images with the finding at least as much under them (the matched test): a Clever-Hans
  candidate;
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
    matched = cf.get("control") == "matched images"
    if not cf["used"]:
        why = f"no significant effect of removing its distinctive region ({_stats(cf, alpha)})"
        if matched:
            off = cf.get("off_finding")
            rest = (f"removing the rest has no significant effect ({_stats(off, alpha)}); "
                    if off else "")
            part = "" if overlap is not None and overlap >= evidence_overlap else "partly "
            where = f" ({overlap:.0%} of it on the finding masks)" if overlap is not None else ""
            why = (f"its distinctive region lies {part}on the finding's evidence{where}; {rest}"
                   f"beside images with the finding under the same cells, its members' loss is not "
                   f"significantly larger ({_stats(cf, alpha)})")
        elif overlap is not None and overlap >= evidence_overlap:
            why = (f"its distinctive region lies on the finding's evidence ({overlap:.0%} of it on "
                   f"the finding masks); removing the rest has no significant effect "
                   f"({_stats(cf, alpha)})")
        return NOT, why
    if overlap is None:
        return DISTINCT, ("removing its distinctive region changes the logit significantly; no "
                          "finding mask is known, so whether it is the finding or a shortcut is "
                          "for a human to judge")
    if matched:
        return FLAGGED, ("removing its distinctive region lowers its members' logit more than the "
                         f"same cells lower that of {cf['controls']} images with the finding at "
                         "least as much under them: the region holds more than the finding")
    aside = (f"; {test.on_finding} member(s) whose region lies wholly on their finding were "
             "left out" if test.on_finding else "")
    return FLAGGED, ("removing its distinctive region, where it lies off each member's finding "
                     "mask, changes the logit significantly" + aside)


def _stats(cf: dict[str, Any], alpha: float) -> str:
    e, f, p = cf["effect"], cf["floor"], cf["p_value"]
    return (f"effect {e:.2f} {'≤' if e <= f else '>'} floor {f:.2f}, p = {p:.2g}"
            f"{f' ≥ {alpha:g}' if p >= alpha else ''}")


def cf_text(cf: dict[str, Any] | None) -> str:
    """The counterfactual result in one clause."""
    if not cf:
        return ""
    control = ("for as many random cells" if cf.get("control", "random cells") == "random cells"
               else "for the same cells of images with the finding under them")
    return (f"removing it lowers the logit by {cf['logit_drop_hot']:.2f} vs "
            f"{cf['logit_drop_control']:.2f} {control} (effect {cf['effect']:.2f} "
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
