"""Where an audit's per-class arrays come from: the shard store (read shard by shard, one
class's column at a time) or arrays in memory (tests, small runs).

The analysis asks for the rows of chosen dataset positions, one block (a shard's worth) at a
time, so that memory holds one class's maps of one block at once beyond what SpRAy clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np

from .store import ShardPlan, ShardStore


class ClassArrays(Protocol):
    """Rows of the stored arrays (``logits``, ``maps32``, ``maps64``, ``image64``,
    ``finding64``, ``has_finding``) at sorted dataset positions."""

    n_images: int

    def rows(self, key: str, positions: np.ndarray, t: int | None = None) -> np.ndarray:
        """``key`` at ``positions`` (column ``t`` of the class axis when given)."""

    def blocks(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        """``positions`` split into consecutive blocks of at most one shard each."""


@dataclass
class StoreArrays:
    """:class:`ClassArrays` of a shard store (relevance maps memory-mapped)."""

    store: ShardStore
    plan: ShardPlan

    @property
    def n_images(self) -> int:
        return self.plan.n_images

    def rows(self, key: str, positions: np.ndarray, t: int | None = None) -> np.ndarray:
        return self.store.column(self.plan, key, positions, t)

    def blocks(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        positions = np.asarray(positions, dtype=np.int64)
        shard = positions // self.plan.shard_size
        for s in np.unique(shard):
            yield positions[shard == s]


@dataclass
class MemoryArrays:
    """:class:`ClassArrays` of arrays in memory (``block`` rows per block)."""

    data: dict[str, np.ndarray]
    block: int = 256

    @property
    def n_images(self) -> int:
        return len(self.data["logits"])

    def rows(self, key: str, positions: np.ndarray, t: int | None = None) -> np.ndarray:
        a = self.data[key][np.asarray(positions, dtype=np.int64)]
        return a if t is None else a[:, t]

    def blocks(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        positions = np.asarray(positions, dtype=np.int64)
        for i in range(0, len(positions), self.block):
            yield positions[i:i + self.block]


def as_arrays(data: "ClassArrays | dict[str, np.ndarray]") -> ClassArrays:
    return MemoryArrays(data) if isinstance(data, dict) else data
