"""A hand-built shortcut on 64-px phantoms, no training: a dim filled 6×6 square (local grey
+ 0.3, never near-white) drawn at a random place per image inside a chosen box, on 90 % of
the positives and 10 % of the negatives, and a finding (a soft blob in the lower left) on
the positives. The model's logit reads the sum of a marker detector (centre-minus-surround)
and of a finding detector (local mean above the body's grey); relevance maps come from
chexplain's LRP."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

SIDE = 64
BODY = 0.45
FINDING = (48, 18)  #: the finding's centre (row, col)


class ShortcutNet(nn.Module):
    """conv 11×11 (channel 0: the mean of the centre 6×6 minus the mean of its surround,
    − 0.15; channel 1: the 11×11 mean − (body + 0.12)), ReLU, sum over the image, linear."""

    def __init__(self, marker_weight: float = 4.0, finding_weight: float = 4.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 11, padding=5)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(2, 1)
        with torch.no_grad():
            k = torch.full((11, 11), -1.0 / 85)
            k[3:9, 3:9] = 1.0 / 36
            self.conv.weight[0, 0] = k
            self.conv.weight[1, 0] = 1.0 / 121
            self.conv.bias.copy_(torch.tensor([-0.15, -(BODY + 0.12)]))
            self.fc.weight.copy_(torch.tensor([[marker_weight, finding_weight]]) * SIDE * SIDE)
            self.fc.bias.fill_(-2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flat(self.pool(self.relu(self.conv(x)))))


@dataclass
class Phantoms:
    images: np.ndarray  #: (N, 64, 64) float32
    labels: np.ndarray  #: (N,) 1 / 0
    marked: np.ndarray  #: (N,) bool
    finding: np.ndarray  #: (N, 64, 64) bool, the finding's mask (positives)


def phantoms(box: tuple[int, int, int, int], n_pos: int = 60, n_neg: int = 30, seed: int = 0) -> Phantoms:
    """``box`` = (row0, col0, row1, col1): where the marker's top-left corner is drawn."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    body = ((yy - 32) / 29.0) ** 2 + ((xx - 32) / 27.0) ** 2 < 1
    base = ndimage.gaussian_filter(np.where(body, BODY, 0.02), 3.0)
    n = n_pos + n_neg
    labels = np.array([1] * n_pos + [0] * n_neg)
    marked = np.where(labels == 1, rng.random(n) < 0.9, rng.random(n) < 0.1)
    images, masks = [], []
    for i in range(n):
        img = base + 0.01 * rng.standard_normal((SIDE, SIDE))
        mask = np.zeros((SIDE, SIDE), bool)
        if labels[i]:
            cy, cx = np.array(FINDING) + rng.integers(-2, 3, 2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 4.0 ** 2))
            img = img + 0.3 * blob
            mask = blob > 0.3
        if marked[i]:
            r = rng.integers(box[0], box[2] + 1)
            c = rng.integers(box[1], box[3] + 1)
            img[r:r + 6, c:c + 6] = img[r:r + 6, c:c + 6].mean() + 0.3
        images.append(np.clip(img, 0, 1))
        masks.append(mask)
    return Phantoms(np.asarray(images, np.float32), labels, marked, np.asarray(masks))


def audit_data(model: nn.Module, ph: Phantoms) -> dict[str, np.ndarray]:
    """The arrays an audit stores, with LRP (epsilon-plus) maps of the model's logit."""
    from chexplain.audit.pooling import sum_pool
    from chexplain.lrp.engine import LRP

    x = torch.from_numpy(ph.images)[:, None]
    e = LRP(model, composite="epsilon-plus").explain(x, classes=[0])
    maps = e.relevance.sum(2) if e.relevance.ndim == 5 else e.relevance.sum(1)[:, None]
    maps = maps.detach().double()
    return {"logits": e.logits[:, :1].detach().numpy(), "maps64": maps.numpy(),
            "maps32": sum_pool(maps, 32).numpy(), "image64": ph.images,
            "finding64": ph.finding[:, None], "has_finding": (ph.labels == 1)[:, None]}
