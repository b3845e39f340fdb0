"""Per-class AUROC for multi-label chest-radiograph classifiers, the study's Table 2, ROC curves.

A class whose evaluated labels hold no positive or no negative has **no** AUROC: it is
reported as undefined (``None`` in Python, ``null`` in JSON, ``n/a (no positives)`` in
tables), never as 0.00 or 1.00, and it is left out of every mean. (The study's Table 2 printed
0.00 for Fracture and 1.00 for Pleural Other, artefacts of a validation set with 0 or 1
positive.) Entries whose loss mask is 0 (uncertain labels under U-Ignore) are not evaluated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.chexpert import OBSERVATIONS
from ..errors import InputError
from ..io import atomic_path

#: The five CheXpert competition observations (Irvin et al., AAAI 2019).
COMPETITION: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
                                "Pleural Effusion")
#: The study's Table 2 (Alam et al., CBMS 2022): validation AUROC of its DenseNet-121 (Keras,
#: 1 epoch at 221 px, blanks and uncertain as 0), all 14 observations as printed there
#: (``shared/docs/study-tables.md``). Two of them are artefacts, see :data:`STUDY_ARTEFACTS`.
STUDY_TABLE2: dict[str, float] = {
    "No Finding": 0.79, "Enlarged Cardiomediastinum": 0.60, "Cardiomegaly": 0.80,
    "Lung Opacity": 0.87, "Lung Lesion": 0.53, "Edema": 0.87, "Consolidation": 0.51,
    "Pneumonia": 0.50, "Atelectasis": 0.53, "Pneumothorax": 0.68, "Pleural Effusion": 0.91,
    "Pleural Other": 1.00, "Fracture": 0.00, "Support Devices": 0.89}
#: The study's values that are not AUROCs: classes with 0 or 1 positive in its validation set,
#: whose undefined AUROC it printed as a number.
STUDY_ARTEFACTS: dict[str, str] = {
    "Pleural Other": "artefact: undefined AUROC printed as 1.00",
    "Fracture": "artefact: undefined AUROC printed as 0.00"}
#: The study's reported mean AUROC (0.76 weighted by prevalence in its code).
STUDY_MEAN_AUROC = 0.73
STUDY_WEIGHTED_MEAN_AUROC = 0.76
#: Irvin et al. 2019, CheXpert validation AUROC of their best policy per observation
#: (U-Ones for Atelectasis and Edema).
IRVIN_2019: dict[str, float] = {"Atelectasis": 0.858, "Cardiomegaly": 0.854,
                                "Consolidation": 0.939, "Edema": 0.941, "Pleural Effusion": 0.936}


def _arrays(targets, scores, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.asarray(targets, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    m = np.ones_like(t) if mask is None else np.asarray(mask, dtype=np.float64)
    if t.ndim != 2 or t.shape != s.shape or t.shape != m.shape:
        raise InputError(f"targets {t.shape}, scores {s.shape} and mask {m.shape} must be the "
                         "same N x C shape")
    if not np.isfinite(s).all():
        raise InputError("scores hold NaN or infinite values")
    return t, s, m


def per_class_auroc(targets, scores, mask=None,
                    names: Sequence[str] = OBSERVATIONS) -> dict[str, Any]:
    """AUROC per class with scikit-learn; ``targets`` 0/1, ``scores`` any monotone score (logits
    or probabilities), ``mask`` 1 where a label counts. Returns::

        {"auroc": {name: float | None}, "positives": {..}, "negatives": {..},
         "undefined": {name: "no positives" | "no negatives" | "no labels"},
         "mean_auroc": float | None, "defined": int,
         "competition_mean_auroc": float | None, "competition_defined": int}

    The means are over the defined classes only (None when there is none).
    """
    from sklearn.metrics import roc_auc_score

    t, s, m = _arrays(targets, scores, mask)
    if len(names) != t.shape[1]:
        raise InputError(f"{len(names)} class names for {t.shape[1]} score columns")
    auroc: dict[str, float | None] = {}
    pos, neg, undefined = {}, {}, {}
    for c, name in enumerate(names):
        keep = m[:, c] > 0
        y = t[keep, c] > 0.5
        pos[name], neg[name] = int(y.sum()), int((~y).sum())
        if pos[name] and neg[name]:
            auroc[name] = float(roc_auc_score(y, s[keep, c]))
        else:
            auroc[name] = None
            undefined[name] = "no labels" if not len(y) else "no positives" if not pos[name] \
                else "no negatives"
    defined = [v for v in auroc.values() if v is not None]
    comp = [auroc[n] for n in COMPETITION if auroc.get(n) is not None]
    return {"auroc": auroc, "positives": pos, "negatives": neg, "undefined": undefined,
            "mean_auroc": float(np.mean(defined)) if defined else None, "defined": len(defined),
            "competition_mean_auroc": float(np.mean(comp)) if comp else None,
            "competition_defined": len(comp)}


def format_auroc(value: float | None, reason: str | None = None) -> str:
    """``0.853`` or ``n/a (no positives)``."""
    if value is None:
        return f"n/a ({reason})" if reason else "n/a"
    return f"{value:.3f}"


def study_cell(name: str) -> str:
    """The study's Table 2 value of ``name``, its artefacts marked (``1.00 (artefact: ...)``)."""
    value = STUDY_TABLE2.get(name)
    if value is None:
        return "not in the study"
    note = STUDY_ARTEFACTS.get(name)
    return f"{value:.2f}" + (f" ({note})" if note else "")


#: Column headers shared by the markdown and HTML Table 2: the literature first, then this run.
TABLE2_HEADER = ("Observation", "Study (Alam 2022), literature", "Irvin 2019, literature",
                 "ours (this run)", "positives", "negatives")
TABLE2_NOTE = ("The two literature columns are the papers' CheXpert validation AUROCs, copied "
               "from them; only \"ours\" was measured in this run, on its own data (the phantom "
               "radiographs in the demo), so the columns are not comparable. Undefined AUROC (a "
               "class without positives or without negatives) is n/a and left out of our mean; "
               "the study printed two such classes as numbers (Pleural Other 1.00, Fracture "
               "0.00), marked as artefacts. Its mean is the 0.73 it reports; its 14 printed "
               f"values average {np.mean(list(STUDY_TABLE2.values())):.2f}, the 12 without the "
               "artefacts "
               f"{np.mean([v for k, v in STUDY_TABLE2.items() if k not in STUDY_ARTEFACTS]):.2f}.")


def table2_rows(result: dict[str, Any]) -> list[list[str]]:
    """Table 2's row per observation: name, the study's AUROC, Irvin et al.'s (competition
    observations), ours, positives, negatives."""
    rows = []
    for name, value in result["auroc"].items():
        irvin = IRVIN_2019.get(name)
        rows.append([name, study_cell(name), "" if irvin is None else f"{irvin:.3f}",
                     format_auroc(value, result["undefined"].get(name)), str(result["positives"][name]),
                     str(result["negatives"][name])])
    return rows


def table2_markdown(result: dict[str, Any], title: str = "ours (this run)") -> str:
    """The study's Table 2 layout (one row per observation) with its numbers beside ours and
    Irvin et al.'s for the competition observations."""
    head = list(TABLE2_HEADER[:3]) + [title] + list(TABLE2_HEADER[4:])
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in table2_rows(result)]
    mean = result["mean_auroc"]
    lines.append(f"| **Mean** (ours: {result['defined']} defined classes) | {STUDY_MEAN_AUROC:.2f} "
                 f"({STUDY_WEIGHTED_MEAN_AUROC:.2f} weighted) | | {format_auroc(mean)} | | |")
    comp = result["competition_mean_auroc"]
    study_comp = np.mean([STUDY_TABLE2[n] for n in COMPETITION])
    lines.append(f"| **Mean of the 5 competition observations** "
                 f"(ours: {result['competition_defined']} defined) | {study_comp:.2f} | "
                 f"{np.mean(list(IRVIN_2019.values())):.3f} | {format_auroc(comp)} | | |")
    return "\n".join(lines + ["", TABLE2_NOTE]) + "\n"


def save_roc_curves(path: str | os.PathLike, targets, scores, mask=None,
                    names: Sequence[str] = OBSERVATIONS, title: str | None = None) -> Path:
    """One ROC panel per class with a defined AUROC (PNG, atomic); the undefined classes are
    listed in one line under the panels, with the reason."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    t, s, m = _arrays(targets, scores, mask)
    result = per_class_auroc(t, s, m, names)
    shown = [c for c, name in enumerate(names) if result["auroc"][name] is not None]
    undefined = [f"{n} ({result['undefined'][n]})" for n in names if result["auroc"][n] is None]
    note = ("AUROC undefined, not drawn: " + ", ".join(undefined)) if undefined else ""
    n = max(len(shown), 1)
    cols = min(5, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(max(3.0 * cols, 6.0), 3.5 * rows + (0.5 if note else 0) + (0.4 if title else 0)),
                 dpi=100)
    FigureCanvasAgg(fig)
    for k, c in enumerate(shown):
        name = names[c]
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        keep = m[:, c] > 0
        fpr, tpr, _ = roc_curve(t[keep, c] > 0.5, s[keep, c])
        ax.plot(fpr, tpr, color="C0", lw=1.5)
        ax.set_title(f"{name}\nAUROC {format_auroc(result['auroc'][name])}", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        if k % cols == 0:
            ax.set_ylabel("true positive rate", fontsize=7)
        ax.set_xlabel("false positive rate", fontsize=7)
    if not shown:
        fig.text(0.5, 0.5, "no class has a defined AUROC", ha="center", va="center", fontsize=10)
    if note:
        import textwrap

        fig.text(0.01, 0.01, textwrap.fill(note, 150), fontsize=7, ha="left", va="bottom")
    if title:
        fig.suptitle(title, fontsize=10)
    bottom = (0.5 / fig.get_figheight()) if note else 0.0
    top = 1.0 - ((0.4 / fig.get_figheight()) if title else 0.0)
    fig.tight_layout(rect=(0, bottom, 1, top), h_pad=1.0)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def evaluate_model(model, dataset, out: str | os.PathLike | None = None,
                   names: Sequence[str] | None = None, device: str = "auto",
                   batch_size: int = 32, workers: int = 0, amp: str = "off",
                   progress: bool = True, title: str = "", about: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-class AUROC of ``model``'s logits on a :class:`CheXpertDataset`.

    ``names`` are the observations of the model's outputs, in order (default: the model's
    ``observations`` attribute, e.g. :class:`~chexplain.models.densenet.XRVLogits`, else all
    14); outputs named None are skipped. With ``out``, writes ``auroc.json``, ``table2.md``,
    ``roc_curves.png`` and ``predictions.csv`` (Path and one probability per output).
    ``about``: facts of the run (checkpoint, CSV, ...) put first in the report.
    """
    from torch.utils.data import DataLoader

    from ..io import write_csv, write_json, write_text
    from ..train.distributed import DistEnv, resolve_device
    from ..train.loop import predict, resolve_amp

    dev = resolve_device(device, DistEnv())
    names = list(names or getattr(model, "observations", None) or OBSERVATIONS)
    unknown = [n for n in names if n is not None and n not in OBSERVATIONS]
    if unknown:
        raise InputError(f"{unknown[0]!r} is not a CheXpert observation")
    model = model.to(dev).eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                        pin_memory=dev.type == "cuda")
    p = predict(model, loader, dev, resolve_amp(amp, dev), channels_last=True, progress=progress, desc="evaluate",
                num_classes=len(names))
    if p["logits"].shape[1] != len(names):
        raise InputError(f"model has {p['logits'].shape[1]} outputs, {len(names)} names given")
    keep = [i for i, n in enumerate(names) if n is not None]
    kept = [names[i] for i in keep]
    cols = [OBSERVATIONS.index(n) for n in kept]
    logits = p["logits"][:, keep]
    target, mask = p["target"][:, cols], p["mask"][:, cols]
    result = per_class_auroc(target, logits, mask, kept)
    report = {**(about or {}), "images": len(dataset), "policy": getattr(dataset, "policy", None), **result}
    if out is None:
        return report
    out = Path(out)
    report.update(study_table2=STUDY_TABLE2, study_mean_auroc=STUDY_MEAN_AUROC,
                  irvin_2019=IRVIN_2019)
    write_json(out / "auroc.json", report)
    csv_name = Path(getattr(dataset, "csv_path", "data")).name
    write_text(out / "table2.md", f"# AUROC on {csv_name} ({len(dataset)} images{title})\n\n"
               + table2_markdown(result))
    save_roc_curves(out / "roc_curves.png", target, logits, mask, kept,
                    title=f"{csv_name}{title}")
    from scipy.special import expit

    probs = expit(logits.astype(np.float64))
    paths = dataset.frame["Path"].to_numpy()[p["index"]]
    write_csv(out / "predictions.csv", ([path] + [f"{v:.6f}" for v in row] for path, row in zip(paths, probs)),
              ["Path", *kept])
    return report


def evaluate_checkpoint(checkpoint: str | os.PathLike, csv: str | os.PathLike,
                        out: str | os.PathLike, data: str | os.PathLike | None = None,
                        policy: str | None = None, frontal_only: bool = False,
                        device: str = "auto", batch_size: int = 32, workers: int = 0,
                        amp: str = "off", progress: bool = True,
                        model_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a model (any spec of :func:`chexplain.load_model`, e.g. a ``best.pt``; its
    other arguments in ``model_options``) on a CheXpert-format CSV.

    The model's outputs are matched to the CSV's observations by name (outputs that are no
    CheXpert observation are left out). Writes to ``out``: ``auroc.json`` (per-class AUROC,
    null when undefined, counts, means, the model's spec, weights' SHA-256 and preprocessing),
    ``table2.md`` (the study's Table 2 layout beside ours), ``roc_curves.png`` and
    ``predictions.csv`` (Path and one probability per observation). ``policy`` maps uncertain
    labels (default: the training run's); ``data`` is the folder the CSV's Paths live in.
    """
    from ..data.chexpert import CheXpertDataset, read_chexpert_csv
    from ..train.data import resolve_csv, resolve_root
    from ..validate import prepare_out
    from ..zoo import load_model
    from ..zoo.labels import observation_of

    prepare_out(out)
    model = load_model(checkpoint, **(model_options or {}))
    names = [observation_of(n) for n in model.names]
    if not any(names):
        raise InputError(f"{checkpoint}: no output of the model is a CheXpert observation "
                         f"({', '.join(model.names)}); name them with --class-names")
    meta = model.info
    csv = resolve_csv(csv, data)
    frame = read_chexpert_csv(csv)
    ds = CheXpertDataset(csv, resolve_root(data, frame["Path"].iloc[0]),
                         policy=policy or meta.get("policy", "zeros"),
                         frontal_lateral="Frontal" if frontal_only else None,
                         size=model.image_size, normalization=model.normalization)
    about = {"checkpoint": str(checkpoint), "model": model.record(), "csv": str(csv),
             "epoch": meta.get("epoch"), "arch": meta.get("arch"), "init": meta.get("init")}
    return evaluate_model(model.module, ds, out, names, device, batch_size, workers,
                          amp, progress, f"; model {Path(str(checkpoint)).name}, epoch "
                          f"{meta.get('epoch')}", about)
