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
#: 1 epoch at 221 px, blanks and uncertain as 0). Only the values quoted in chexplain's issue 6
#: are filled in; None means "not given" there, not a measured value. Fracture 0.00 and
#: Pleural Other 1.00 are artefacts of classes with 0 or 1 positive in its validation set.
STUDY_TABLE2: dict[str, float | None] = {name: None for name in OBSERVATIONS} | {
    "Consolidation": 0.51, "Pneumonia": 0.50, "Atelectasis": 0.53, "Fracture": 0.00,
    "Pleural Other": 1.00}
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


def table2_rows(result: dict[str, Any]) -> list[list[str]]:
    """Table 2's row per observation: name, the study's AUROC, Irvin et al.'s (competition
    observations), ours, positives, negatives."""
    rows = []
    for name, value in result["auroc"].items():
        study, irvin = STUDY_TABLE2.get(name), IRVIN_2019.get(name)
        rows.append([name, "not given" if study is None else f"{study:.2f}", "" if irvin is None else f"{irvin:.3f}",
                     format_auroc(value, result["undefined"].get(name)), str(result["positives"][name]),
                     str(result["negatives"][name])])
    return rows


def table2_markdown(result: dict[str, Any], title: str = "ours") -> str:
    """The study's Table 2 layout (one row per observation) with its numbers beside ours and
    Irvin et al.'s for the competition observations."""
    lines = [f"| Observation | Study (Alam 2022) | Irvin 2019 | {title} | positives | negatives |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in table2_rows(result)]
    mean = result["mean_auroc"]
    lines.append(f"| **Mean** (defined classes: {result['defined']}) | {STUDY_MEAN_AUROC:.2f} "
                 f"({STUDY_WEIGHTED_MEAN_AUROC:.2f} weighted) | | {format_auroc(mean)} | | |")
    comp = result["competition_mean_auroc"]
    lines.append(f"| **Mean of the 5 competition observations** "
                 f"({result['competition_defined']} defined) | not given | "
                 f"{np.mean(list(IRVIN_2019.values())):.3f} | {format_auroc(comp)} | | |")
    notes = ["", "Undefined AUROC (a class without positives or without negatives) is n/a and "
             "left out of the means; the study printed such classes as 0.00 and 1.00."]
    return "\n".join(lines + notes) + "\n"


def save_roc_curves(path: str | os.PathLike, targets, scores, mask=None,
                    names: Sequence[str] = OBSERVATIONS, title: str | None = None) -> Path:
    """One ROC panel per class (PNG, atomic); undefined classes get a panel saying why."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    t, s, m = _arrays(targets, scores, mask)
    result = per_class_auroc(t, s, m, names)
    cols = 5 if len(names) > 4 else len(names)
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.0 * cols, 3.0 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for c, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, c + 1)
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        value = result["auroc"][name]
        if value is not None:
            keep = m[:, c] > 0
            fpr, tpr, _ = roc_curve(t[keep, c] > 0.5, s[keep, c])
            ax.plot(fpr, tpr, color="C0", lw=1.5)
        ax.set_title(f"{name}\nAUROC {format_auroc(value, result['undefined'].get(name))}",
                     fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        if c % cols == 0:
            ax.set_ylabel("true positive rate", fontsize=7)
        if c >= len(names) - cols:
            ax.set_xlabel("false positive rate", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
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
    p = predict(model, loader, dev, resolve_amp(amp, dev), progress=progress, desc="evaluate",
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
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    paths = dataset.frame["Path"].to_numpy()[p["index"]]
    write_csv(out / "predictions.csv", ([path] + [f"{v:.6f}" for v in row] for path, row in zip(paths, probs)),
              ["Path", *kept])
    return report


def evaluate_checkpoint(checkpoint: str | os.PathLike, csv: str | os.PathLike,
                        out: str | os.PathLike, data: str | os.PathLike | None = None,
                        policy: str | None = None, frontal_only: bool = False,
                        device: str = "auto", batch_size: int = 32, workers: int = 0,
                        amp: str = "off", progress: bool = True) -> dict[str, Any]:
    """Evaluate a trained CheXpert DenseNet (``best.pt``) on a CheXpert-format CSV.

    Writes to ``out``: ``auroc.json`` (per-class AUROC, null when undefined, counts, means),
    ``table2.md`` (the study's Table 2 layout beside ours), ``roc_curves.png`` and
    ``predictions.csv`` (Path and one probability per observation). ``policy`` maps uncertain
    labels (default: the training run's); ``data`` is the folder the CSV's Paths live in.
    """
    from ..data.chexpert import CheXpertDataset, read_chexpert_csv
    from ..models.densenet import load_trained
    from ..train.data import resolve_csv, resolve_root

    from ..validate import prepare_out

    prepare_out(out)
    model, meta = load_trained(checkpoint)
    csv = resolve_csv(csv, data)
    frame = read_chexpert_csv(csv)
    ds = CheXpertDataset(csv, resolve_root(data, frame["Path"].iloc[0]),
                         policy=policy or meta.get("policy", "zeros"),
                         frontal_lateral="Frontal" if frontal_only else None,
                         size=meta["image_size"], normalization=meta["normalization"])
    about = {"checkpoint": str(checkpoint), "csv": str(csv), "epoch": meta.get("epoch"),
             "arch": meta["arch"], "init": meta.get("init")}
    return evaluate_model(model, ds, out, meta["observations"], device, batch_size, workers,
                          amp, progress, f"; checkpoint {Path(checkpoint).name}, epoch "
                          f"{meta.get('epoch')}", about)
