"""The MNIST heatmap figures of Bach et al. 2015 (PLoS ONE e0130140), for any ``explain`` method.

(a) all ten class heatmaps for chosen test digits (the study: a 2 and a 7);
(b) a 3 explained for classes 3 and 8 and a 4 for classes 4 and 9, one row per model
    (the study: tanh, ReLU, ReLU* of experiment II);
(c) ten random test digits x ten classes.

Each figure is a PNG grid written by :func:`chexplain.viz.render.save_grid` with the relevance
array (rows, cols, 28, 28) as ``.npy`` beside it, plus ``<name>_inputs.npy`` with the digits.
Relevance is summed over the (single) input channel. Default method: ``"lrp-epsilon"`` (the
study's Eq. 58); relevance passes through tanh unchanged, the study's convention.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .data import MnistData
from ...errors import ChexplainError
from ...io import write_npy
from .augment import encode

DEFAULT_METHOD = "lrp-epsilon"
DEFAULT_CMAP = "study"
PAIRS = ((3, 3), (3, 8), (4, 4), (4, 9))  # figure (b): (digit, explained class)


def relevance_maps(
    model: torch.nn.Module, meta: Mapping[str, Any], images: torch.Tensor, classes: Sequence[int],
    method: str = DEFAULT_METHOD, **params: Any,
) -> np.ndarray:
    """Relevance of ``classes`` for uint8 digits (N, 28, 28): a float array (N, len(classes), 28, 28)."""
    import chexplain

    device = next(model.parameters()).device
    x = encode(images.to(device), meta["inputs"], float(meta.get("mean", 0.0)))
    r = chexplain.explain(model, x, method=method, classes=list(classes), **params)
    return r.detach().float().sum(dim=2).cpu().numpy()


def first_of_each(labels: torch.Tensor, digits: Sequence[int]) -> list[int]:
    """Index of the first test digit of each class in ``digits``."""
    out = []
    for d in digits:
        hits = torch.nonzero(labels == int(d)).flatten()
        if not len(hits):
            raise ChexplainError(f"the test set holds no digit {d}")
        out.append(int(hits[0]))
    return out


def _predict(model: torch.nn.Module, meta: Mapping[str, Any], images: torch.Tensor) -> list[int]:
    device = next(model.parameters()).device
    with torch.no_grad():
        x = encode(images.to(device), meta["inputs"], float(meta.get("mean", 0.0)))
        return model(x).argmax(1).cpu().tolist()


def _save(path: Path, maps: np.ndarray, inputs: np.ndarray, title: str, cmap: str, **labels: Any) -> Path:
    from ...viz.render import save_grid

    import textwrap

    from ...viz.render import SIGNED_CMAPS

    write_npy(path.with_name(path.stem + "_inputs.npy"), inputs)
    zero = {"study": "green", "coldnhot": "black"}.get(cmap, "white")
    note = (f"red = evidence for the class's logit, blue = against, {zero} = 0; one scale per row "
            "(±max |R| of the row)") if cmap in SIGNED_CMAPS else f"colour map {cmap}; one scale per row"
    width = max(int(maps.shape[1] * 1.5 * 11), 40)  # characters that fit the grid's width
    title = "\n".join(textwrap.wrap(f"{title}. {note}", width))
    return Path(save_grid(path, maps, cmap=cmap, norm="symmetric", title=title, shared_scale="row", **labels))


def figure_all_classes(
    model: torch.nn.Module, meta: Mapping[str, Any], data: MnistData, path: str | os.PathLike,
    digits: Sequence[int] = (2, 7), method: str = DEFAULT_METHOD, cmap: str = DEFAULT_CMAP, **params: Any,
) -> Path:
    """Figure (a): heatmaps for all ten classes of the first test digit of each of ``digits``."""
    idx = first_of_each(data.test_labels, digits)
    return _ten_classes(model, meta, data.test_images[idx], path, "all classes",
                        lambda preds: [f"digit {d} (pred. {p})" for d, p in zip(digits, preds)], method, cmap,
                        params)


def _ten_classes(model: torch.nn.Module, meta: Mapping[str, Any], images: torch.Tensor, path: str | os.PathLike,
                 title: str, row_labels: Any, method: str, cmap: str, params: dict) -> Path:
    """One row per image, one column per class 0–9; ``row_labels(predictions)`` names the rows."""
    maps = relevance_maps(model, meta, images, range(10), method, **params)
    return _save(Path(path), maps, images.numpy(), f"{meta.get('label', '')} net, {method}: {title}", cmap,
                 row_labels=row_labels(_predict(model, meta, images)), col_labels=[f"class {c}" for c in range(10)])


def figure_pairs(
    models: Mapping[str, tuple[torch.nn.Module, Mapping[str, Any]]], data: MnistData, path: str | os.PathLike,
    pairs: Sequence[tuple[int, int]] = PAIRS, method: str = DEFAULT_METHOD, cmap: str = DEFAULT_CMAP, **params: Any,
) -> Path:
    """Figure (b): a 3 explained for classes 3 and 8, a 4 for 4 and 9; one row per model."""
    if not models:
        raise ChexplainError("figure (b) needs at least one model")
    digits = sorted({d for d, _ in pairs})
    classes = sorted({c for _, c in pairs})
    idx = dict(zip(digits, first_of_each(data.test_labels, digits)))
    images = data.test_images[[idx[d] for d in digits]]
    rows = []
    for model, meta in models.values():  # one explanation pass per model serves every cell
        maps = relevance_maps(model, meta, images, classes, method, **params)
        rows.append(np.stack([maps[digits.index(d), classes.index(c)] for d, c in pairs]))
    inputs = data.test_images[[idx[d] for d, _ in pairs]].numpy()
    labels = [f"{meta.get('label', name)}\n(exp. {meta.get('experiment', '?')})" for name, (_, meta) in models.items()]
    if len(set(labels)) < len(labels):
        labels = list(models)
    return _save(Path(path), np.stack(rows), inputs, f"{method}: digit explained for two classes", cmap,
                 row_labels=labels, col_labels=[f"{d} as class {c}" for d, c in pairs])


def figure_random(
    model: torch.nn.Module, meta: Mapping[str, Any], data: MnistData, path: str | os.PathLike,
    count: int = 10, seed: int = 0, method: str = DEFAULT_METHOD, cmap: str = DEFAULT_CMAP, **params: Any,
) -> Path:
    """Figure (c): ``count`` random test digits (seeded) x ten classes."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.test_labels), generator=g)[:count]
    return _ten_classes(model, meta, data.test_images[idx], path, "random test digits",
                        lambda preds: [f"#{int(i)}: {int(data.test_labels[i])} (pred. {p})" for i, p in zip(idx, preds)],
                        method, cmap, params)


def make_figures(
    models: Mapping[str, tuple[torch.nn.Module, Mapping[str, Any]]], data: MnistData, out_dir: str | os.PathLike,
    method: str = DEFAULT_METHOD, digits: Sequence[int] = (2, 7), seed: int = 0, cmap: str = DEFAULT_CMAP,
    pair_models: Sequence[str] | None = None, **params: Any,
) -> list[Path]:
    """Figures (a) and (c) for every model (keyed by a short name) and (b) over ``pair_models``
    (default: all); returns the PNG paths."""
    out = Path(out_dir)
    paths = []
    for name, (model, meta) in models.items():
        paths.append(figure_all_classes(model, meta, data, out / f"{name}_a_all_classes.png", digits, method, cmap, **params))
        paths.append(figure_random(model, meta, data, out / f"{name}_c_random_digits.png", 10, seed, method, cmap, **params))
    chosen = {k: models[k] for k in (pair_models or list(models))}
    paths.append(figure_pairs(chosen, data, out / "b_3v8_4v9.png", PAIRS, method, cmap, **params))
    return paths
