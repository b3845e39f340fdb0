"""One self-contained HTML report: every image embedded as a base64 data URI, inline CSS, no
scripts and no external asset, so it opens offline and can be mailed as one file. All text
is escaped.

Sections (each a ``<section id=...>``): ``summary`` (what ran, how long), ``auroc`` (the
per-class AUROC table beside the study's Table 2), ``figures`` (example explanation figures),
``comparison`` (method × metric with 95 % intervals, per-class table, AOPC and localisation
plots), ``randomisation`` (cascading randomisation curves and table) and ``mnist`` (the quick
reproduction of Bach et al. 2015). A section whose input is missing says so.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any, Sequence

from ..io import write_text

SECTIONS = ("summary", "auroc", "figures", "comparison", "randomisation", "mnist")
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1150px;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
td.best{font-weight:bold;background:#eef7ee}
.split{border-left:3px solid #888}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555}.note{font-size:.85em;color:#555}
"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def data_uri(path: str | os.PathLike) -> str:
    """A PNG (or JPEG) file as a data URI."""
    p = Path(path)
    mime = "image/jpeg" if p.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    return f"data:{mime};base64," + base64.b64encode(p.read_bytes()).decode("ascii")


def figure(path: str | os.PathLike, caption: str) -> str:
    p = Path(path)
    if not p.is_file():
        return f'<p class="note">figure missing: {esc(p.name)}</p>'
    return (f'<figure><img alt="{esc(caption)}" src="{data_uri(p)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], best: Sequence[set] | None = None,
          split: int | None = None) -> str:
    """An HTML table; ``best[i]`` holds the column indices of row i to emphasise; column
    ``split`` gets a heavy left border (e.g. literature columns | this run's)."""
    def cls(j: int, marks: set) -> str:
        names = (["best"] if j in marks else []) + (["split"] if j == split else [])
        return f' class="{" ".join(names)}"' if names else ""

    out = ["<table><thead><tr>" + "".join(f"<th{cls(j, set())}>{esc(h)}</th>" for j, h in enumerate(header))
           + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        marks = best[i] if best else set()
        out.append("<tr>" + "".join(f"<td{cls(j, marks)}>{esc(c)}</td>" for j, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def auroc_section(auroc: dict[str, Any] | None) -> str:
    from ..evaluate.auroc import STUDY_MEAN_AUROC, TABLE2_HEADER, TABLE2_NOTE, format_auroc, table2_rows

    if not auroc:
        return '<p class="note">No AUROC evaluation was run.</p>'
    rows = table2_rows(auroc)
    rows.append([f"Mean (ours: {auroc['defined']} defined classes)", f"{STUDY_MEAN_AUROC:.2f}", "",
                 format_auroc(auroc["mean_auroc"]), "", ""])
    return (table(TABLE2_HEADER, rows, split=3)
            + f'<p class="note">{esc(TABLE2_NOTE)}</p>')


def comparison_section(result: dict[str, Any] | None, plots: Path | None) -> str:
    from ..evaluate.compare import FEW_ITEMS, HIGHER_IS_BETTER, METRIC_LABELS, METRICS, leaders_text, \
        summary_cell

    if not result:
        return '<p class="note">No comparison was run.</p>'
    methods = list(result["summary"])
    rows, best = [], []
    for m in methods:
        rows.append([m] + [summary_cell(result["summary"][m][k]) for k in METRICS])
        best.append(set())
    for j, k in enumerate(METRICS):
        vals = [(result["summary"][m][k]["mean"], i) for i, m in enumerate(methods)
                if result["summary"][m][k]["mean"] is not None and m != "random"]
        if vals:
            pick = max(vals) if HIGHER_IS_BETTER[k] else min(vals)
            best[pick[1]].add(j + 1)
    few = any(v["n"] <= FEW_ITEMS for d in result["summary"].values() for v in d.values())
    parts = [f"<p>{esc(result['n_items'])} evaluation items ((image, positive finding) pairs) from "
             f"{esc(result['n_images'])} images; classes: {esc(', '.join(result['classes']))}. "
             f"Empty masks excluded from localisation: {esc(result['n_empty'])}. Perturbation: "
             f"{esc(result['config']['patch'])} px regions, {esc(result['config']['steps'])} steps, "
             f"{esc(result['config']['baseline'])} baseline, on the explained class's logit. "
             "Each cell: mean [95 % bootstrap interval] n = items scored. Items with an empty mask, "
             "and maps without any positive relevance (they point at nothing), are not scored for "
             "localisation (pointing game included), so n can differ between methods. Bold: best "
             "per column (the random baseline is not a candidate).</p>",
             table(["method"] + [METRIC_LABELS[k] for k in METRICS], rows, best),
             "<p><b>Who leads in this run</b> (means; a lead whose interval overlaps the next "
             "method's is not a clear win):</p><ul>"
             + "".join(f"<li>{esc(line)}</li>" for line in leaders_text(result).splitlines()) + "</ul>"]
    if few:
        parts.append(f'<p class="note"><b>Warning:</b> results from {FEW_ITEMS} or fewer items carry '
                     "no bootstrap interval: they are too few to rank methods.</p>")
    classes = list(next(iter(result["per_class"].values())))
    crow = [[m, c, result["per_class"][m][c]["n"]] + [_fmt(result["per_class"][m][c][k])
            for k in ("pointing_game", "relevance_mass", "aopc_morf")]
            for m in methods for c in classes]
    parts.append("<h3>Per finding</h3>" + table(["method", "finding", "items", "pointing game",
                                                  "relevance mass", "AOPC (MoRF)"], crow))
    if plots is not None:
        parts.append(figure(plots / "aopc_curves.png", "Region perturbation: mean logit drop"))
        parts.append(figure(plots / "localisation.png", "Localisation against the masks (95 % CI)"))
    return "".join(parts)


def randomisation_section(result: dict[str, Any] | None, plots: Path | None) -> str:
    if not result or not result.get("randomisation"):
        return '<p class="note">No randomisation test was run.</p>'
    rnd = result["randomisation"]
    rows = [[m, rnd[m]["n"], _fmt(rnd[m]["spearman_abs"][0]), _fmt(rnd[m]["spearman_abs"][-1]),
             _fmt(rnd[m]["ssim"][0]), _fmt(rnd[m]["ssim"][-1])] for m in rnd]
    first = next(iter(rnd.values()))["layers"]
    parts = [f"<p>Cascading randomisation (Adebayo et al. 2018) of {esc(len(first))} layer groups, "
             f"from {esc(first[0])} down to {esc(first[-1])}. A map that depends on the learned "
             "weights loses its similarity to the original (low values are good). The random "
             "baseline is a fixed-seed map that ignores the model: its similarity stays 1, "
             "i.e. it fails the check, as a model-independent map should.</p>",
             table(["method", "items", "Spearman |map| (first step)", "Spearman |map| (all random)",
                    "SSIM (first step)", "SSIM (all random)"], rows)]
    if plots is not None:
        parts.append(figure(plots / "randomisation.png", "Similarity to the original map per step"))
    return "".join(parts)


def mnist_section(mnist: dict[str, Any] | None, folder: Path | None, max_figures: int = 4) -> str:
    if not mnist:
        return '<p class="note">The MNIST reproduction was not run.</p>'
    rows = [[m["experiment"], m["net"], f"{m['iterations']:,}", f"{m['paper_iterations']:,}",
             f"{m['test_accuracy']:.2%}", f"{m['paper_accuracy']:.2%}"] for m in mnist["experiments"]]
    parts = [f"<p>{esc(mnist['study'])}. Data: {esc(mnist['data_source'])}."
             + (" <b>Quick run: far fewer iterations than the study; accuracies are not comparable.</b>"
                if mnist.get("quick") else "") + "</p>",
             table(["experiment", "net", "iterations", "study's iterations", "test accuracy",
                    "study's accuracy"], rows)]
    pngs = [r for r in mnist.get("figures", []) if r.endswith(".png")]
    # figure (a) and (b) of every net first, then (c): at most max_figures, the file stays small
    pngs.sort(key=lambda r: (0 if "_a_" in r or Path(r).name.startswith("b_") else 1))
    for rel in pngs[:max_figures] if folder is not None else []:
        parts.append(figure(folder / rel, rel))
    return "".join(parts)


def write_report(path: str | os.PathLike, title: str, summary: Sequence[tuple[str, Any]],
                 auroc: dict[str, Any] | None = None,
                 figures: Sequence[tuple[str, str | os.PathLike]] = (),
                 comparison: dict[str, Any] | None = None, comparison_dir: str | os.PathLike | None = None,
                 mnist: dict[str, Any] | None = None, mnist_dir: str | os.PathLike | None = None) -> Path:
    """Write the report (atomically); ``summary`` is (label, value) rows, ``figures`` (caption,
    PNG path) pairs. Returns the path."""
    plots = Path(comparison_dir) if comparison_dir is not None else None
    body = {
        "summary": table(["", ""], [[k, v] for k, v in summary]),
        "auroc": auroc_section(auroc),
        "figures": "".join(figure(p, c) for c, p in figures) or '<p class="note">No figures.</p>',
        "comparison": comparison_section(comparison, plots),
        "randomisation": randomisation_section(comparison, plots),
        "mnist": mnist_section(mnist, Path(mnist_dir) if mnist_dir is not None else None),
    }
    heads = {"summary": "Run", "auroc": "Classification: AUROC per finding",
             "figures": "Explanations: example figures",
             "comparison": "Comparison: faithfulness and localisation",
             "randomisation": "Sanity check: cascading parameter randomisation",
             "mnist": "MNIST: quick reproduction of Bach et al. 2015"}
    doc = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{esc(title)}</h1>",
           "<nav><ul>" + "".join(f'<li><a href="#{s}">{esc(heads[s])}</a></li>' for s in SECTIONS)
           + "</ul></nav>"]
    for s in SECTIONS:
        doc.append(f'<section id="{s}"><h2>{esc(heads[s])}</h2>{body[s]}</section>')
    doc.append("</body></html>")
    return write_text(path, "\n".join(doc) + "\n")
