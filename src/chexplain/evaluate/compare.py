"""Compare explanation methods over a data set: faithfulness, localisation, randomisation.

Multi-label aware: every *(image, positive finding)* pair is one evaluation item, explained
for that finding's logit. Localisation needs the finding's mask (the phantom's drawn masks,
or NIH boxes as masks); an item whose mask is empty is **excluded from localisation and
counted** (``n_empty``), never scored as a hit. Faithfulness (region perturbation, AOPC) is
scored on every item; cascading randomisation on the first ``randomisation_items`` items.

Each method and metric gets the mean over items and a seeded percentile-bootstrap 95 %
interval (``bootstrap`` resamples of the items). Outputs in ``out``: ``compare.json``,
``summary.csv`` (method × metric), ``items.csv`` (one row per item and method),
``per_class.csv``, and the plots ``aopc_curves.png``, ``localisation.png``,
``randomisation.png``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..registry import check_method_params
from ..errors import ChexplainError
from ..io import result_set, write_csv, write_json
from .baselines import Attributor, TraceCache, params_record
from .faithfulness import BASELINES, aopc_summary, region_perturbation
from .localisation import localisation_metrics
from .metrics import HIGHER_IS_BETTER, LOCALISATION, METRIC_LABELS, METRICS
from .randomisation import cascading_randomisation_many
from .road import ROAD_NOISE

#: The methods of the phantom benchmark: LRP presets, Grad-CAM and two baselines.
BENCHMARK_METHODS = ("lrp-epsilon", "lrp-alpha2beta1", "epsilon-plus-flat", "epsilon-gamma-box",
                     "gradcam", "gradient-x-input", "random")
#: at most this many scored items: a mean without a bootstrap interval, and a warning
FEW_ITEMS = 5


@dataclass
class CompareConfig:
    """Options of :func:`compare` (CLI: ``chexplain compare``)."""

    methods: Sequence[str] = BENCHMARK_METHODS
    classes: Sequence[str] | None = None  # observations to evaluate; default: those with masks
    patch: int = 8  # region side in model-input pixels
    steps: int = 16  # perturbation steps (the whole image is perturbed at the last)
    fraction: float = 1.0
    baseline: str = "blur"  # blur | mean | noise | road
    road_noise: float = ROAD_NOISE  # σ of ROAD's noise (model-input units), with baseline="road"
    tolerance: int = 0  # pointing-game tolerance in pixels
    iou_threshold: float = 0.5
    max_items: int | None = None
    randomisation_items: int = 8
    randomisation_steps: int | None = None  # steps (merged layer groups, output first); None: all
    batch_size: int = 16
    bootstrap: int = 1000
    seed: int = 0
    method_params: dict = field(default_factory=dict)  # method -> {param: value}


def bootstrap_ci(values: np.ndarray, n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high) of the finite ``values`` with a percentile bootstrap; Nones if empty."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None, None, None
    if v.size == 1 or n < 1:
        return float(v.mean()), float(v.mean()), float(v.mean())
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n, v.size))].mean(1)
    a = (1 - level) / 2
    return float(v.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def evaluation_items(targets: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """(K, 2) (image, class) pairs: every positive label among ``classes`` of every image."""
    t = np.asarray(targets)
    sub = t[:, list(classes)] > 0.5
    img, k = np.nonzero(sub)
    return np.stack([img, np.asarray(classes, dtype=np.int64)[k]], 1) if img.size else \
        np.zeros((0, 2), dtype=np.int64)


def _item_masks(item: dict) -> torch.Tensor | None:
    for key in ("finding_masks", "box_mask"):
        if key in item:
            return item[key]
    return None


def compare(model: torch.nn.Module, dataset: Any, out: str | os.PathLike,
            observations: Sequence[str], normalization: Any, config: CompareConfig | None = None,
            device: str = "cpu", progress: bool = True,
            about: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every metric for every method over ``dataset`` (items with ``image``, ``target``
    and ``finding_masks`` or ``box_mask``); write the files listed in the module doc.
    ``about``: the model's record (spec, weights' SHA-256, preprocessing), kept as ``model``."""
    from tqdm import tqdm

    from ..validate import prepare_out
    from .plots import plot_aopc, plot_localisation, plot_randomisation

    cfg = config or CompareConfig()
    t0 = time.perf_counter()
    _check_config(cfg, dataset)
    out = prepare_out(out)
    names = list(observations)
    model = model.to(device).eval()
    targets = np.asarray(dataset.targets) if hasattr(dataset, "targets") else \
        np.stack([np.asarray(dataset[i]["target"]) for i in range(len(dataset))])
    if cfg.classes is None:
        from ..data.phantom import FINDINGS

        default = getattr(dataset, "default_classes", None)
        if default is None and getattr(dataset, "with_masks", False):
            default = FINDINGS
        wanted = list(range(len(names))) if default is None else [names.index(c) for c in default if c in names]
    else:
        unknown = [c for c in cfg.classes if c not in names]
        if unknown:
            raise ChexplainError(f"unknown class {unknown[0]!r}; the model's outputs are {', '.join(names)}")
        wanted = [names.index(c) for c in cfg.classes]
    items = evaluation_items(targets, wanted)
    if cfg.max_items is not None:
        items = items[:cfg.max_items]
    if len(items) == 0:
        raise ChexplainError(f"no positive finding among {', '.join(names[c] for c in wanted)} "
                             "in this data set: nothing to evaluate")
    traces = TraceCache()  # the LRP methods trace and canonize the model once
    explainers = {m: Attributor(model, m, normalization, seed=cfg.seed, traces=traces,
                                **cfg.method_params.get(m, {})) for m in cfg.methods}
    from ..data.images import get_normalization

    bounds = get_normalization(normalization).bounds()
    per: dict[str, dict[str, list]] = {m: {k: [] for k in METRICS} for m in cfg.methods}
    curves: dict[str, dict[str, list]] = {m: {"morf": [], "lerf": []} for m in cfg.methods}
    rows: list[dict] = []
    counts = {"n_empty": 0, "n_no_mask": 0}
    rand_x, rand_t = [], []
    images = np.unique(items[:, 0])
    # one tick per (item, method): the bar moves as each method finishes a batch of items
    bar = tqdm(total=len(items) * len(explainers), desc="compare", unit="map", disable=not progress)
    for lo in range(0, len(images), cfg.batch_size):
        chunk = images[lo:lo + cfg.batch_size]
        loaded = {int(i): dataset[int(i)] for i in chunk}
        sel = items[np.isin(items[:, 0], chunk)]
        x = torch.stack([loaded[int(i)]["image"] for i, _ in sel]).to(device)
        t = torch.as_tensor(sel[:, 1], dtype=torch.long, device=device)
        masks = [_item_masks(loaded[int(i)]) for i, _ in sel]
        has_masks = all(m is not None for m in masks)
        M = torch.stack([m[c] for m, (_, c) in zip(masks, sel)]).to(device) if has_masks else None
        if M is None:
            counts["n_no_mask"] += len(sel)
        else:
            counts["n_empty"] += int((~M.flatten(1).any(1)).sum())
        if sum(len(v) for v in rand_x) < cfg.randomisation_items:
            rand_x.append(x[:cfg.randomisation_items])
            rand_t.append(t[:cfg.randomisation_items])
        ends: dict[int, torch.Tensor] = {}  # logits of x and of its baseline, the same for every method
        for m, att in explainers.items():
            R = att(x, t).float()
            loc = localisation_metrics(R, M, cfg.tolerance, cfg.iou_threshold) if M is not None \
                else {k: np.full(len(sel), np.nan) for k in LOCALISATION}
            pert = region_perturbation(model, x, R, t, cfg.patch, cfg.steps, cfg.fraction,
                                       cfg.baseline, bounds=bounds, batch_size=max(cfg.batch_size, 32),
                                       seed=cfg.seed, shared=ends, road_noise=cfg.road_noise)
            faith = aopc_summary(pert)
            for order in ("morf", "lerf"):
                curves[m][order].append(pert[order]["drop"])
            for k in METRICS:
                per[m][k].append(np.asarray(loc[k] if k in LOCALISATION else faith[k], dtype=float))
            for j, (i, c) in enumerate(sel):
                rows.append({"image": loaded[int(i)].get("path", str(int(i))), "class": names[c],
                             "method": m, **{k: float(per[m][k][-1][j]) for k in METRICS}})
            bar.update(len(sel))
            bar.set_postfix_str(m, refresh=False)
    bar.close()
    values = {m: {k: np.concatenate(v) for k, v in d.items()} for m, d in per.items()}
    summary = {m: {k: dict(zip(("mean", "ci_low", "ci_high"),
                               bootstrap_ci(values[m][k], cfg.bootstrap, cfg.seed)))
                   | {"n": int(np.isfinite(values[m][k]).sum())} for k in METRICS}
               for m in cfg.methods}
    item_classes = np.array([names[c] for c in items[:, 1]])
    per_class = {m: {cls: {k: _nanmean(values[m][k][item_classes == cls]) for k in METRICS}
                     | {"n": int((item_classes == cls).sum())}
                     for cls in dict.fromkeys(item_classes)} for m in cfg.methods}
    aopc_curves = {m: {o: np.concatenate(curves[m][o]).mean(0).tolist() for o in ("morf", "lerf")}
                   for m in cfg.methods}
    randomisation = _randomise(model, torch.cat(rand_x)[:cfg.randomisation_items],
                               torch.cat(rand_t)[:cfg.randomisation_items], cfg, normalization,
                               progress, explainers) if cfg.randomisation_items > 0 else {}
    result = {
        "model": about, "config": asdict(cfg) | {"methods": list(cfg.methods),
                                                 "method_params": params_record(cfg.method_params)},
        "perturbation": perturbation_text(cfg),
        "observations": names, "classes": [names[c] for c in wanted],
        "n_images": int(len(images)), "n_items": int(len(items)),
        "items_per_class": {c: int((item_classes == c).sum()) for c in dict.fromkeys(item_classes)},
        **counts, "summary": summary, "per_class": per_class,
        "aopc_curves": {"removed_fraction": [k / cfg.steps * cfg.fraction for k in range(cfg.steps + 1)],
                        **aopc_curves},
        "randomisation": randomisation, "seconds": 0.0,
    }
    with result_set(out, RESULT_FILES) as stage:
        plot_aopc(stage / "aopc_curves.png", result)
        plot_localisation(stage / "localisation.png", result)
        if randomisation:
            plot_randomisation(stage / "randomisation.png", result)
        _write_csv(stage / "items.csv", rows)
        _write_csv(stage / "summary.csv", [{"method": m, "metric": k, **v} for m, d in summary.items()
                                           for k, v in d.items()])
        _write_csv(stage / "per_class.csv", [{"method": m, "class": c, **v} for m, d in per_class.items()
                                             for c, v in d.items()])
        result["seconds"] = round(time.perf_counter() - t0, 2)
        write_json(stage / "compare.json", _finite(result))
    return result


#: Every file :func:`compare` writes: replaced together (an older run's extra ones removed).
RESULT_FILES = ("compare.json", "summary.csv", "items.csv", "per_class.csv", "aopc_curves.png",
                "localisation.png", "randomisation.png")


def _check_config(cfg: CompareConfig, dataset: Any) -> None:
    """Every option, before any work (the patch against the data's image size)."""
    from ..validate import positive_int

    for value, option in ((cfg.patch, "--patch"), (cfg.steps, "--steps"),
                          (cfg.max_items, "--max-items"), (cfg.batch_size, "--batch-size")):
        positive_int(value, option)
    positive_int(cfg.bootstrap, "--bootstrap", 0)
    positive_int(cfg.randomisation_items, "--randomisation-items", 0)
    positive_int(cfg.randomisation_steps, "--randomisation-steps")
    positive_int(cfg.tolerance, "--tolerance", 0)
    if cfg.baseline not in BASELINES:
        raise ChexplainError(f"unknown --baseline {cfg.baseline!r}; choose one of {', '.join(BASELINES)}")
    if not (math.isfinite(cfg.road_noise) and cfg.road_noise >= 0):
        raise ChexplainError(f"--road-noise {cfg.road_noise} must be a finite number >= 0")
    for m, params in cfg.method_params.items():
        if m not in cfg.methods:
            raise ChexplainError(f"parameters for {m!r}, which is not among the methods "
                                 f"({', '.join(cfg.methods)})")
        check_method_params(m, params)
    if not 0.0 < cfg.iou_threshold <= 1.0:
        raise ChexplainError(f"--iou-threshold {cfg.iou_threshold} must be in (0, 1]")
    if len(dataset) == 0:
        raise ChexplainError("the data set holds no image")
    side = min(dataset[0]["image"].shape[-2:])
    if cfg.patch > side:
        raise ChexplainError(f"--patch {cfg.patch} is larger than the {side}-pixel model input")


def _nanmean(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def _randomise(model, x, t, cfg: CompareConfig, normalization, progress: bool,
               built: dict[str, Attributor] | None = None) -> dict:
    """Every method on one cascade (one copy of the model, each group re-initialised once per
    step); the original maps from the explainers already ``built`` on the model (except the
    random baseline, whose fresh seeded map is what it must reproduce)."""
    traces = TraceCache()  # per randomised model, one trace for all LRP methods
    factories = {m: (lambda net, m=m: Attributor(net, m, normalization, seed=cfg.seed, traces=traces,
                                                 **cfg.method_params.get(m, {})))
                 for m in cfg.methods}
    originals = {m: a for m, a in (built or {}).items() if a.kind != "random"}
    res_all = cascading_randomisation_many(model, x, t, factories, n_groups=cfg.randomisation_steps,
                                           seed=cfg.seed, originals=originals)
    out = {}
    for m, res in res_all.items():
        out[m] = {"layers": res["layers"], "n": int(x.shape[0])}
        for k in ("spearman", "spearman_abs", "ssim"):
            with np.errstate(all="ignore"):
                out[m][k] = [_nanmean(col) for col in res[k].T]
    return out


def _finite(obj: Any) -> Any:
    """JSON-safe: NaN/inf → None, numpy scalars → Python."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_csv(path: Path, rows: list[dict]) -> None:
    header = list(rows[0]) if rows else None
    write_csv(path, ([r.get(k, "") for k in header] for r in _finite(rows)), header)


def summary_cell(v: dict[str, Any]) -> str:
    """One metric of one method: ``mean [ci_low, ci_high] n=items`` (n/a without items); with
    at most :data:`FEW_ITEMS` items the interval is replaced by a warning."""
    if v["mean"] is None:
        return "n/a (n=0)"
    if v["n"] <= FEW_ITEMS:
        return f"{v['mean']:.3f} n={v['n']} (too few items for an interval)"
    return f"{v['mean']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}] n={v['n']}"


def leaders(result: dict[str, Any], metrics: Sequence[str] = METRICS,
            exclude: Sequence[str] = ("random",)) -> dict[str, list[str]]:
    """Per metric, the method(s) with the best mean in this run (ties kept; baselines in
    ``exclude`` are not candidates), by the metric's direction."""
    out = {}
    for k in metrics:
        vals = {m: d[k]["mean"] for m, d in result["summary"].items()
                if m not in exclude and d[k]["mean"] is not None}
        if not vals:
            continue
        best = max(vals.values()) if HIGHER_IS_BETTER[k] else min(vals.values())
        out[k] = [m for m, v in vals.items() if abs(v - best) <= 1e-12]
    return out


def leaders_text(result: dict[str, Any], metrics: Sequence[str] = METRICS) -> str:
    """One sentence per metric saying which method leads in this run, and by how much over the
    runner-up; says when the intervals of the two overlap."""
    lines = []
    for k, best in leaders(result, metrics).items():
        summ = result["summary"]
        ranked = sorted((m for m in summ if m != "random" and summ[m][k]["mean"] is not None),
                        key=lambda m: summ[m][k]["mean"], reverse=HIGHER_IS_BETTER[k])
        name = METRIC_LABELS[k].split(":")[0].split(" (")[0]
        b = summ[best[0]][k]
        text = f"{name}: {' and '.join(best)} {'lead' if len(best) > 1 else 'leads'} ({b['mean']:.3f}"
        rest = [m for m in ranked if m not in best]  # the runner-up is not one of the tied leaders
        if rest:
            r = summ[rest[0]][k]
            text += f"; next {rest[0]} {r['mean']:.3f}"
            overlap = None not in (b["ci_low"], r["ci_low"]) and min(b["n"], r["n"]) > FEW_ITEMS and \
                (b["ci_low"] <= r["ci_high"] and r["ci_low"] <= b["ci_high"])
            if overlap:
                text += ", 95 % intervals overlap"
        lines.append(text + ").")
    return "\n".join(lines)


def perturbation_text(cfg: CompareConfig) -> str:
    """How the faithfulness metrics perturbed the images, in one sentence."""
    what = {"blur": "a Gaussian blur of the image", "mean": "the image's mean per channel",
            "noise": "uniform noise over the input range",
            "road": f"ROAD's noisy linear imputation (Rong et al. 2022, σ = {cfg.road_noise:g})"}
    return (f"AOPC: {cfg.patch}-pixel regions removed in {cfg.steps} steps, each replaced by "
            f"{what.get(cfg.baseline, cfg.baseline)} (--baseline {cfg.baseline}).")


def summary_markdown(result: dict[str, Any], metrics: Sequence[str] = METRICS) -> str:
    """Method × metric table: mean [95 % CI] (n), the metrics named in words, then which
    method leads on each metric in this run."""
    head = "| method | " + " | ".join(METRIC_LABELS[k] for k in metrics) + " |"
    lines = [head, "|---|" + "---:|" * len(metrics)]
    for m, d in result["summary"].items():
        lines.append(f"| {m} | " + " | ".join(summary_cell(d[k]) for k in metrics) + " |")
    text = "\n".join(lines) + "\n\n"
    if "perturbation" in result:
        text += result["perturbation"] + " "
    return text + "In this run: " + leaders_text(result, metrics).replace("\n", " ") + "\n"
