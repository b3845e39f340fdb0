"""``chexplain explain``: a trained model, radiographs (PNG, JPEG, DICOM) → probabilities,
per-method and per-class overlays with raw maps, and the study's figure layouts.

Layout of ``out``::

    predictions.csv, predictions.json        probabilities per image and observation
    <image>/<method>/<class>.png (+ .npy)    overlay and raw 2-D map (model-input pixels)
    <image>/fig4_lrp_rules.png               the study's Fig. 4: the top class under LRP-z, LRP-ε,
                                             LRP-αβ (α2β1) and Deep Taylor (always these four)
    <image>/fig6_top3.png                    the study's Fig. 6: the top-3 findings per method
    <image>/fig7_gradcam_classes.png         the study's Fig. 7: Grad-CAM for the explained classes
                                             (computed also when gradcam is not among the methods)
    <image>/lrp_vs_gradcam.png               classes × (LRP methods, Grad-CAM)
    fig5_correct_incorrect.png               with labels: a correct and an incorrect case per class
    explain.json                             options, files and timings
    progress.jsonl                           the run's fingerprint and the finished images
                                             (``resume=True`` skips them; :mod:`chexplain.jobs.progress`)
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..data.chexpert import OBSERVATIONS
from ..data.nih_tables import NIH_TO_CHEXPERT
from ..errors import ChexplainError, DataError
from ..evaluate.baselines import Attributor, params_record
from ..viz.figures import classes_figure, correct_incorrect_figure, lrp_rules_figure, \
    methods_figure, style, top_findings_figure
from ..io import slug, write_csv, write_json
from ..registry import all_methods, check_method_params
from ..viz.render import save_heatmap

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
DEFAULT_METHODS = ("lrp-epsilon", "lrp-alpha1beta0", "lrp-alpha2beta1", "dtd", "gradcam")
#: The study's Fig. 4: LRP-z, LRP-ε, LRP-αβ and Deep Taylor side by side (the study does not
#: state its α, β; α2β1 is the common iNNvestigate/LRP Toolbox choice).
FIG4_METHODS = ("lrp-z", "lrp-epsilon", "lrp-alpha2beta1", "dtd")
#: Methods preferred for the one-method figure (Fig. 5): composites and αβ before the noisy
#: single-rule LRP-ε/z on deep networks (Kohlbrenner et al. 2020).
FIGURE_PREFERENCE = ("epsilon-gamma-box", "epsilon-plus-flat", "epsilon-alpha2beta1-flat",
                     "epsilon-plus", "lrp-alpha2beta1", "dtd", "gradcam")



def image_identity(path: str | os.PathLike) -> str:
    """The image's identity for figure titles: ``patient00001/study1`` for CheXpert-style paths
    (``.../patientN/studyM/view1_frontal.jpg``; the view is added when it is not the frontal
    view 1), else the file name."""
    p = Path(path)
    parts = p.parts
    for k in range(len(parts) - 2, 0, -1):
        if parts[k].startswith("study") and parts[k - 1].startswith("patient"):
            ident = f"{parts[k - 1]}/{parts[k]}"
            return ident if p.stem == "view1_frontal" else f"{ident}/{p.stem}"
    return p.name


def find_images(inputs: Sequence[str | os.PathLike], exclude: str | os.PathLike | None = None) -> list[Path]:
    """Image files among ``inputs`` (files, or folders searched recursively), sorted per folder;
    ``*_masks`` folders of the phantom and the folder ``exclude`` (the output) are skipped."""
    found: list[Path] = []
    skip = Path(exclude).resolve() if exclude is not None else None

    def outside(f: Path) -> bool:
        return skip is None or not f.resolve().is_relative_to(skip)

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES
                           and f.is_file() and not any(s.endswith("_masks") for s in f.parts)
                           and outside(f))
            if not files:
                raise DataError(f"{p}: no PNG, JPEG or DICOM image in this folder")
            found += files
        elif p.is_file():
            found.append(p)
        else:
            raise DataError(f"{p}: no such image file or folder")
    return found


def parse_methods(spec: str | Sequence[str] | None) -> list[str]:
    names = list(DEFAULT_METHODS) if spec is None else \
        [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    bad = [m for m in names if m not in all_methods()]
    if bad or not names:
        raise ChexplainError(f"unknown method {bad[0] if bad else ''!r}; choose from "
                             f"{', '.join(all_methods())}")
    return list(dict.fromkeys(names))


def select_classes(spec: str | Sequence[str], probs: np.ndarray,
                   names: Sequence[str]) -> list[int]:
    """``top3`` / ``topK``, ``all``, or class names (comma-separated or a list) → indices."""
    if isinstance(spec, str):
        s = spec.strip()
        if not s.replace(",", "").strip():
            raise ChexplainError(f"--classes {spec!r} names no class; give top3, all or names")
        m = re.fullmatch(r"top(\d+)", s.lower())
        if m:
            k = int(m.group(1))
            if not 1 <= k <= len(names):
                raise ChexplainError(f"--classes {s}: K must be between 1 and {len(names)}")
            return [int(i) for i in np.argsort(-probs, kind="stable")[:k]]
        if s.lower() == "all":
            return list(range(len(names)))
        spec = [c.strip() for c in s.split(",") if c.strip()]
    lower = {n.lower(): i for i, n in enumerate(names)}
    out = []
    for c in spec:
        if c.lower() not in lower:
            raise ChexplainError(f"unknown class {c!r}; the model's outputs are {', '.join(names)}")
        out.append(lower[c.lower()])
    return list(dict.fromkeys(out))


def read_labels(path: str | os.PathLike, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Labels by image file name: a CheXpert-format CSV (blank/uncertain → not used: NaN) or
    NIH's Data_Entry CSV (its findings mapped to CheXpert observations)."""
    import pandas as pd

    from ..data.tables import read_csv_strict

    frame = read_csv_strict(Path(path))
    out: dict[str, np.ndarray] = {}
    if "Image Index" in frame.columns and "Finding Labels" in frame.columns:
        mapped = {c for c in NIH_TO_CHEXPERT.values() if c in names}
        for name, found in zip(frame["Image Index"], frame["Finding Labels"].astype(str)):
            v = np.full(len(names), np.nan)
            for c in mapped:
                v[names.index(c)] = 0.0
            for f in found.split("|"):
                c = NIH_TO_CHEXPERT.get(f.strip())
                if c in mapped:
                    v[names.index(c)] = 1.0
            out[str(name)] = v
        return out
    if "Path" not in frame.columns:
        raise DataError(f"{path}: neither a CheXpert CSV (Path column) nor NIH's Data_Entry CSV")
    by_name = {str(c).lower(): c for c in frame.columns}  # outputs match columns by name
    cols = np.stack([pd.to_numeric(frame[by_name[c.lower()]], errors="coerce").to_numpy(dtype=float)
                     if c.lower() in by_name else np.full(len(frame), np.nan) for c in names], 1)
    cols[(cols != 0) & (cols != 1)] = np.nan  # blank and uncertain: not used
    return {str(p): v for p, v in zip(frame["Path"], cols)}


def _labels_for(labels: dict[str, np.ndarray], path: Path) -> np.ndarray | None:
    """The labels whose key is the longest-matching tail of ``path`` (file name first)."""
    parts = Path(path).resolve().parts
    for k in range(1, len(parts) + 1):
        v = labels.get("/".join(parts[-k:]))
        if v is not None:
            return v
    return None


def explain_images(model: torch.nn.Module, inputs: Sequence[str | os.PathLike], out: str | os.PathLike,
                   normalization: Any, image_size: int, observations: Sequence[str] = OBSERVATIONS,
                   methods: str | Sequence[str] | None = None, classes: str | Sequence[str] = "top3",
                   labels: str | os.PathLike | None = None, threshold: float = 0.5,
                   device: str = "cpu", display_size: int = 256, figure_method: str | None = None,
                   progress: bool = True, skip_bad: bool = False, resume: bool = False,
                   about: dict[str, Any] | None = None,
                   method_params: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Explain every image of ``inputs`` with ``methods`` for ``classes``; see module doc.

    Overlays and figures show the radiograph at ``display_size`` pixels (shorter side; the
    maps are upsampled bilinearly onto it); the ``.npy`` files keep the maps in model-input
    pixels. ``figure_method`` draws the correct/incorrect figure (default: the first of
    :data:`FIGURE_PREFERENCE` among ``methods``, else the first method).

    ``normalization`` and ``image_size`` are the model's preprocessing (stored in chexplain
    checkpoints; any normalisation), ``observations`` the model's output names and ``about``
    the model's record (spec, weights' SHA-256, preprocessing; see
    :meth:`chexplain.zoo.LoadedModel.record`), kept as ``model``. ``method_params`` gives
    methods their parameters (``{method: {name: value}}``, see :func:`chexplain.explain`).
    Returns the summary also written to ``out/explain.json``. Every option is checked before
    the first image; an unreadable image stops the run naming the file, or with
    ``skip_bad`` is left out and listed under ``failed`` (the others are explained).

    Each finished image is appended to ``predictions.csv`` and ``progress.jsonl`` at once;
    ``resume`` skips the images a run with the same options, inputs and model (``about``: its
    spec, weights' SHA-256 and preprocessing) finished, and refuses a run where any of them differ.
    """
    from tqdm import tqdm

    from ..data.images import Preprocess, get_normalization, read_image
    from ..validate import positive_int, prepare_out, probability, warn_odd_size

    t0 = time.perf_counter()
    names = list(observations)
    methods = parse_methods(methods)
    probability(threshold, "--threshold")
    positive_int(display_size, "--display-size", 16)
    select_classes(classes, np.zeros(len(names)), names)  # unknown names fail before any work
    method_params = dict(method_params or {})
    for m, params in method_params.items():
        if m not in methods:
            raise ChexplainError(f"parameters for {m!r}, which is not among --methods "
                                 f"({', '.join(methods)})")
        check_method_params(m, params)
    if figure_method is not None and figure_method not in methods:
        raise ChexplainError(f"--figure-method {figure_method!r} is not among --methods "
                             f"({', '.join(methods)})")
    out = prepare_out(out)
    files = find_images(inputs, exclude=out)
    norm = get_normalization(normalization)
    pre = Preprocess(int(image_size), None, norm)
    model = model.to(device).eval()
    explainers = {m: Attributor(model, m, norm, **method_params.get(m, {})) for m in methods}
    extra = {m: Attributor(model, m, norm) for m in FIG4_METHODS + ("gradcam",) if m not in explainers}
    label_map = read_labels(labels, names) if labels else None
    lrp = [m for m in methods if explainers[m].kind == "lrp"]
    cams = [m for m in methods if explainers[m].kind == "cam"] or ["gradcam"]
    every = {**explainers, **extra}
    records, cache, failed = [], [], []
    stems: dict[str, int] = {}
    from .progress import Progress

    done = Progress(out, names)
    done.start(_fingerprint(files, names, methods, classes, labels, threshold, image_size,
                            normalization, display_size, figure_method, about, method_params),
               resume)
    for path in tqdm(files, desc="explain", unit="img", disable=not progress):
        try:
            raw = read_image(path)
        except DataError as exc:
            if not skip_bad:
                raise (DataError(f"{exc} (--skip-bad explains the other images)") if len(files) > 1
                       else exc) from None
            failed.append({"path": str(path), "error": str(exc)})
            continue
        x = norm.apply(pre.image(raw))[None].to(device)
        img = Preprocess(max(int(display_size), int(image_size)), None, norm).image(raw)
        ident = image_identity(path)
        stem = slug(path.stem if ident == path.name else ident)
        stems[stem] = stems.get(stem, 0) + 1
        if str(path) in done.done:  # finished by the run this one resumes
            rec = done.done[str(path)]
            records.append(rec)
            truth = _labels_for(label_map, path) if label_map is not None else None
            prob = np.array([rec["probabilities"][n] for n in names])
            cache.append((img, x, prob, truth, ident))
            continue
        warn_odd_size(path, *raw.shape)
        with torch.no_grad():
            prob = torch.sigmoid(model(x))[0].double().cpu().numpy()
        chosen = select_classes(classes, prob, names)
        top3 = [int(i) for i in np.argsort(-prob, kind="stable")[:3]]
        explained = list(dict.fromkeys(chosen + top3))
        if stems[stem] > 1:
            stem = f"{stem}_{stems[stem]}"
        folder = out / stem
        maps = {m: explainers[m](x, classes=explained)[0].float().cpu().numpy() for m in methods}
        for m in FIG4_METHODS:  # the study's four LRP variants, for the top class only
            if m not in maps:
                maps[m] = every[m](x, classes=explained[:1])[0].float().cpu().numpy()
        if cams[0] not in maps:
            maps[cams[0]] = every[cams[0]](x, classes=chosen)[0].float().cpu().numpy()
        for m in methods:
            for k, c in enumerate(explained):
                save_heatmap(folder / slug(m) / f"{slug(names[c])}.png", maps[m][k],
                             background=img, **style(m))
        pos = {c: k for k, c in enumerate(explained)}
        cls_names, cls_p = [names[c] for c in chosen], [prob[c] for c in chosen]
        figs = []
        c0 = explained[0]
        figs.append(lrp_rules_figure(folder / "fig4_lrp_rules.png", img,
                                     {m: maps[m][0] for m in FIG4_METHODS},
                                     f"{names[c0]} ({prob[c0]:.2f})",
                                     f"Fig. 4, {ident}: LRP variants for {names[c0]}"))
        figs.append(top_findings_figure(folder / "fig6_top3.png", img,
                                        {m: maps[m][[pos[c] for c in top3]] for m in methods},
                                        [names[c] for c in top3], [prob[c] for c in top3],
                                        f"Fig. 6, {ident}: top-3 findings (probability)"))
        cam = cams[0]
        # maps[cam] holds the explained classes, or only the chosen ones when computed for Fig. 7
        cam_sel = maps[cam][[pos[c] for c in chosen]] if cam in methods else maps[cam]
        figs.append(classes_figure(folder / "fig7_gradcam_classes.png", img, cam, cam_sel,
                                   cls_names, cls_p, f"Fig. 7, {ident}: {cam} per class"))
        if lrp and cam in methods:
            figs.append(methods_figure(folder / "lrp_vs_gradcam.png", img,
                                       {m: maps[m][[pos[c] for c in chosen]] for m in lrp + [cam]},
                                       cls_names, cls_p, f"{ident}: LRP beside {cam}"))
        truth = _labels_for(label_map, path) if label_map is not None else None
        records.append({"path": str(path), "identity": ident, "folder": str(folder), "probabilities":
                        {n: float(p) for n, p in zip(names, prob)},
                        "explained": [names[c] for c in explained],
                        "labels": None if truth is None else
                        {n: (None if np.isnan(v) else int(v)) for n, v in zip(names, truth)},
                        "figures": [str(f) for f in figs]})
        done.add(records[-1])
        cache.append((img, x, prob, truth, ident))
    if not records:
        raise DataError(f"none of the {len(files)} image(s) could be read (first: "
                        f"{failed[0]['error']})")
    fig5 = None
    if label_map is not None:
        fm = figure_method or next((m for m in FIGURE_PREFERENCE if m in methods), methods[0])
        fig5 = _figure5(out / "fig5_correct_incorrect.png", cache, names, explainers[fm], fm,
                        classes, threshold)
    _write_predictions(out, records, names)
    from ..zoo.base import describe_normalization

    summary = {"model": about, "checkpoint_observations": names, "methods": methods, "classes": classes,
               "image_size": int(image_size), "normalization": describe_normalization(norm),
               "threshold": threshold, "images": records, "failed": failed,
               "fig5": None if fig5 is None else str(fig5),
               "seconds": round(time.perf_counter() - t0, 2)}
    write_json(out / "explain.json", summary)
    return summary


def _fingerprint(files, names, methods, classes, labels, threshold, image_size, normalization,
                 display_size, figure_method, about, method_params) -> dict[str, Any]:
    """What makes a resumed run the same run: the model, the inputs and every option that
    changes an output."""
    from ..io import file_sha256

    extra = {"method_params": params_record(method_params)} if method_params else {}
    return {**extra, "model": about, "observations": list(names), "methods": list(methods),
            "classes": classes if isinstance(classes, str) else list(classes),
            "labels": None if labels is None else file_sha256(labels),
            "threshold": float(threshold), "image_size": int(image_size),
            "normalization": str(normalization), "display_size": int(display_size),
            "figure_method": figure_method, "inputs": [str(p) for p in files]}


def _figure5(path: Path, cache, names, explainer, method, classes, threshold) -> Path | None:
    """Per class with labels: the most confident correct and the most confident incorrect case."""
    rows = []
    probs = np.stack([c[2] for c in cache])
    truth = np.stack([c[3] if c[3] is not None else np.full(len(names), np.nan) for c in cache])
    wanted = range(len(names)) if not isinstance(classes, str) or classes.lower().startswith("top") \
        or classes.lower() == "all" else select_classes(classes, probs[0], names)
    for c in wanted:
        known = ~np.isnan(truth[:, c])
        if not known.any() or names[c] == "No Finding":
            continue
        pred = probs[:, c] >= threshold
        correct = known & (pred == (truth[:, c] == 1))
        wrong = known & ~correct
        row = {"class": names[c]}
        for kind, sel in (("correct", correct), ("incorrect", wrong)):
            if not sel.any():
                row[kind] = None
                continue
            conf = np.where(sel, np.abs(probs[:, c] - threshold), -1)
            i = int(np.argmax(conf))
            img, x = cache[i][0], cache[i][1]
            R = explainer(x, classes=[c])[0, 0].float().cpu().numpy()
            lab = "positive" if truth[i, c] == 1 else "negative"
            row[kind] = {"image": img, "map": R, "caption": f"{cache[i][4]}\np={probs[i, c]:.2f}, {lab}"}
        if row["correct"] is not None or row["incorrect"] is not None:
            rows.append(row)
    both = [r for r in rows if r["correct"] is not None and r["incorrect"] is not None]
    rows = both or rows  # classes with both cases first: the comparison the figure is for
    if not rows:
        return None
    return correct_incorrect_figure(path, rows, method,
                                    f"Fig. 5: correct vs incorrect predictions ({method})")


def _write_predictions(out: Path, records: list[dict], names: Sequence[str]) -> None:
    write_csv(out / "predictions.csv", ([r["path"]] + [f"{r['probabilities'][n]:.6f}" for n in names]
                                        for r in records), ["Path", *names])
    write_json(out / "predictions.json", {r["path"]: r["probabilities"] for r in records})

