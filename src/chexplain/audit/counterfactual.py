"""Counterfactual test of a cluster's strategy: does removing its hot region change the logit
more than removing random regions of the same size?

The input is split into ``grid`` × ``grid`` cells. A group's **hot region** is given per
image (the audit gives each member the part of its cluster's distinctive region holding most
of its relevance there, :mod:`chexplain.audit.member_test`; :func:`hot_cells` gives the
fewest cells of a prototype holding a share of its positive relevance, at most ``max_cells``
of them). For each image, the hot cells
and, ``n_random`` times, the same number of cells drawn at random take the blur baseline
(:func:`chexplain.evaluate.faithfulness.baseline_image`), and the class logit's drops are

    Δ_hot = f(x) − f(x with the hot region removed),
    Δ_rand = mean over draws of f(x) − f(x with random cells removed).

The effect is the mean of Δ_hot − Δ_rand over the images, with a bootstrap 95 % interval
(percentile; ``scipy.stats.bootstrap``) and a one-sided paired permutation p-value (signs of
the per-image differences flipped at random; ``scipy.stats.permutation_test``). The strategy
is **used** when p < ``alpha`` and the effect exceeds the **floor**
max(``min_effect``, ``min_effect_sd`` × σ), σ the standard deviation of the class's logits
over the audited data set (passed as ``logit_sd``): a significant change that is small beside
how much the logit varies between images does not make a strategy (blurring any bright
block moves a logit a little, also in a model that never learnt the block).

The images of a strategy may have hot regions of different sizes (members of several
clusters): each image's random regions have as many cells as its own hot region.

The **matched test** (:func:`matched_counterfactual`) replaces the random cells by other
images: the control arm is the drop the same cells cause in images matched to each tested one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ChexplainError


@dataclass(frozen=True)
class CounterfactualConfig:
    grid: int = 16
    max_cells: float = 0.15
    n_random: int = 8
    n_matched: int = 4  #: control images per tested image in the matched test
    baseline: str = "blur"
    max_images: int = 64
    bootstrap: int = 2000
    permutations: int = 9999
    alpha: float = 0.01
    min_effect: float = 0.1  #: absolute floor of the effect, in logits
    min_effect_sd: float = 0.5  #: relative floor, in standard deviations of the class's logits
    matched_effect_sd: float = 1.0  #: the matched test's relative floor (its matching is approximate)
    batch_size: int = 32
    seed: int = 0

    def check(self) -> None:
        if not 0 < self.max_cells <= 1:
            raise ChexplainError("counterfactual max_cells must lie in (0, 1]")
        if self.grid < 2 or self.n_random < 1 or self.n_matched < 1 or self.max_images < 2:
            raise ChexplainError("counterfactual needs grid >= 2, n_random >= 1, n_matched >= 1, "
                                 "max_images >= 2")
        for name in ("min_effect", "min_effect_sd", "matched_effect_sd"):
            if getattr(self, name) < 0:
                raise ChexplainError(f"--{name.replace('_', '-')} {getattr(self, name)} must be >= 0")


@dataclass
class CounterfactualResult:
    images: int
    cells: int  #: hot cells of the first image (and cells per random region)
    area: float  #: mean fraction of the image removed
    hot_cells: list[list[int]]  #: (row, col) on the grid, of the first image
    logit_drop_hot: float
    logit_drop_control: float  #: the control arm's mean drop (``control`` says which arm)
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    used: bool
    floor: float = 0.0  #: the effect the strategy had to exceed, in logits
    logit_sd: float | None = None  #: σ of the class's logits the floor is relative to
    control: str = "random cells"  #: or "matched images" (:func:`matched_counterfactual`)
    controls: int = 0  #: control images (matched test)
    per_image: list[float] = field(default_factory=list)  #: Δ_hot − Δ_control of each image

    def to_dict(self) -> dict:
        return asdict(self)


def hot_cells(prototype: np.ndarray, grid: int, hot_share: float = 0.5,
              max_cells: float = 0.15) -> np.ndarray:
    """(grid, grid) bool: the fewest cells holding ``hot_share`` of the prototype's positive
    relevance (at least one cell, at most ``max_cells`` of them)."""
    from .pooling import sum_pool

    pooled = sum_pool(torch.from_numpy(np.clip(prototype, 0, None)).double(), grid).numpy()
    flat = pooled.ravel()
    order = np.argsort(-flat, kind="stable")
    total = flat.sum()
    if total <= 0:
        raise ChexplainError("the prototype has no positive relevance: no hot region")
    cum = np.cumsum(flat[order]) / total
    k = int(np.searchsorted(cum, hot_share) + 1)
    k = max(1, min(k, int(max_cells * grid * grid)))
    out = np.zeros(grid * grid, dtype=bool)
    out[order[:k]] = True
    return out.reshape(grid, grid)


def _pixels(cells: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, grid, grid) bool → (N, 1, h, w) bool by nearest upsampling."""
    return F.interpolate(cells[:, None].float(), size=(h, w), mode="nearest") > 0.5


def _logits(model, x, cls, batch_size):
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model(x[i:i + batch_size])[:, cls].double().cpu())
    return torch.cat(out)


def counterfactual(model: torch.nn.Module, x: torch.Tensor, cls: int, hot: np.ndarray,
                   config: CounterfactualConfig = CounterfactualConfig(),
                   logit_sd: float | None = None, keep: np.ndarray | None = None) -> CounterfactualResult:
    """The test of the module doc for images ``x`` (N, C, H, W), class ``cls`` and hot cells
    ``hot`` (grid, grid) for all images or (N, grid, grid) per image; ``logit_sd``: σ of the
    class's logits (None: the absolute floor only); ``keep``: (N, h, w) bool pixels (any
    resolution, resized to H × W) that neither the hot nor the random cells remove (an
    image's own finding)."""
    from ..evaluate.faithfulness import baseline_image

    config.check()
    n, _, h, w = x.shape
    if n < 2:
        raise ChexplainError("the counterfactual test needs at least 2 images")
    g = config.grid
    hot = np.array(np.broadcast_to(np.asarray(hot, dtype=bool), (n, g, g)))  # writable copy
    ks = hot.reshape(n, -1).sum(1)
    if (ks < 1).any():
        raise ChexplainError("every image needs at least one hot cell")
    rng = np.random.default_rng(config.seed)
    base = baseline_image(x, config.baseline, patch=max(1, h // g))
    f0 = _logits(model, x, cls, config.batch_size)
    kept = None if keep is None else _pixels(torch.from_numpy(np.ascontiguousarray(keep, dtype=bool)), h, w).to(x.device)
    hot_px = _pixels(torch.from_numpy(np.ascontiguousarray(hot)), h, w).to(x.device)
    if kept is not None:
        hot_px = hot_px & ~kept
    d_hot = (f0 - _logits(model, torch.where(hot_px, base, x), cls, config.batch_size)).numpy()
    d_rand = np.zeros(n)
    for _ in range(config.n_random):
        cells = np.zeros((n, g * g), dtype=bool)
        for i in range(n):
            cells[i, rng.choice(g * g, size=int(ks[i]), replace=False)] = True
        px = _pixels(torch.from_numpy(cells.reshape(n, g, g)), h, w).to(x.device)
        if kept is not None:
            px = px & ~kept
        d_rand += (f0 - _logits(model, torch.where(px, base, x), cls, config.batch_size)).numpy()
    d_rand /= config.n_random
    return _result(hot, d_hot, d_rand, paired_stats(d_hot, d_rand, config, logit_sd), logit_sd)


def _result(cells: np.ndarray, d_hot: np.ndarray, d_ctrl: np.ndarray, st: "PairedStats",
            logit_sd: float | None, control: str = "random cells", controls: int = 0
            ) -> CounterfactualResult:
    """The :class:`CounterfactualResult` of per-image cells (N, grid, grid) and drops."""
    n, g = len(cells), cells.shape[-1]
    ks = np.asarray(cells, bool).reshape(n, -1).sum(1)
    rows, cols = np.nonzero(cells[0])
    return CounterfactualResult(n, int(ks[0]), float(ks.mean() / (g * g)),
                                [[int(r), int(c)] for r, c in zip(rows, cols)],
                                float(d_hot.mean()), float(d_ctrl.mean()), st.effect, st.ci_low,
                                st.ci_high, st.p_value, st.used, st.floor,
                                None if logit_sd is None else float(logit_sd), control, controls,
                                (d_hot - d_ctrl).tolist())


def _drops(model, x: torch.Tensor, cls: int, cells: np.ndarray, config: CounterfactualConfig) -> np.ndarray:
    """Per image f(x) − f(x with its ``cells`` (N, grid, grid) at the baseline)."""
    from ..evaluate.faithfulness import baseline_image

    h, w = x.shape[-2:]
    base = baseline_image(x, config.baseline, patch=max(1, h // config.grid))
    px = _pixels(torch.from_numpy(np.ascontiguousarray(cells, dtype=bool)), h, w).to(x.device)
    f0 = _logits(model, x, cls, config.batch_size)
    return (f0 - _logits(model, torch.where(px, base, x), cls, config.batch_size)).numpy()


def matched_counterfactual(model: torch.nn.Module, x: torch.Tensor, controls: torch.Tensor, cls: int,
                           cells: np.ndarray, control_cells: np.ndarray, owner: np.ndarray,
                           config: CounterfactualConfig = CounterfactualConfig(),
                           logit_sd: float | None = None) -> CounterfactualResult:
    """The **matched test**: images ``x`` (N, C, H, W) lose their ``cells`` (N, grid, grid),
    every control image (``controls``, M) loses the cells of the image ``owner`` (M,) it is
    matched to (``control_cells``, M, grid, grid, in the control's frame), and

        d_i = Δ_i − mean over controls j of i of Δ_j,  Δ = f(x) − f(x with the cells removed);

    effect, interval, p and floor as in the module doc. Controls chosen with the finding at
    least as much under those cells as in image i make the test ask whether the cells hold
    more than the finding: what a finding mask alone cannot tell (a drain along the
    pneumothorax it stands in for). Its floor is ``matched_effect_sd`` σ: the matching (finding
    coverage, logit) is approximate, so a larger difference is asked for."""
    config.check()
    n = len(x)
    owner = np.asarray(owner)
    if n < 2 or set(np.unique(owner).tolist()) != set(range(n)):
        raise ChexplainError("the matched test needs at least 2 images, each with a control")
    d_hot = _drops(model, x, cls, cells, config)
    d_c = _drops(model, controls, cls, control_cells, config)
    d_ctrl = np.bincount(owner, weights=d_c, minlength=n) / np.bincount(owner, minlength=n)
    st = paired_stats(d_hot, d_ctrl, config, logit_sd, config.matched_effect_sd)
    return _result(np.asarray(cells, bool), d_hot, d_ctrl, st, logit_sd, "matched images", len(controls))


@dataclass
class PairedStats:
    """The effect mean(d_test − d_control) with its bootstrap interval, one-sided paired
    permutation p-value, floor, and whether it is used (p < alpha and effect > floor)."""

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    floor: float
    used: bool


def paired_stats(d_test: np.ndarray, d_control: np.ndarray, config: CounterfactualConfig,
                 logit_sd: float | None, effect_sd: float | None = None) -> PairedStats:
    """:class:`PairedStats` of per-image logit drops (the module doc's statistics; the relative
    floor in ``effect_sd`` σ, default ``config.min_effect_sd``)."""
    from scipy import stats

    diff = d_test - d_control
    if np.allclose(diff, diff[0]):
        lo = hi = float(diff[0])
    else:
        boot = stats.bootstrap((diff,), np.mean, n_resamples=config.bootstrap, method="percentile",
                               random_state=np.random.default_rng(config.seed + 1))
        lo, hi = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    perm = stats.permutation_test((d_test, d_control), lambda a, b, axis: np.mean(a - b, axis=axis),
                                  permutation_type="samples", vectorized=True,
                                  n_resamples=config.permutations, alternative="greater",
                                  random_state=np.random.default_rng(config.seed + 2))
    p = float(perm.pvalue)
    effect = float(diff.mean())
    sd = config.min_effect_sd if effect_sd is None else effect_sd
    floor = max(config.min_effect, sd * float(logit_sd or 0.0))
    return PairedStats(effect, lo, hi, p, floor, bool(p < config.alpha and effect > floor))
