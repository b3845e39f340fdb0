"""Shared timing helpers for the benchmarks: median wall time of repeated calls."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def timeit(fn: Callable[[], object], repeat: int = 3, warmup: int = 1, device: str = "cpu") -> float:
    """Median seconds of ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def table(rows: list[tuple[str, float]], reference: str) -> str:
    """Rows of (name, seconds) with the ratio to the row named ``reference``."""
    ref = dict(rows)[reference]
    lines = [f"{'':44s} {'seconds':>9s} {'× ' + reference:>24s}"]
    for name, sec in rows:
        lines.append(f"{name:44s} {sec:9.3f} {sec / ref:24.2f}")
    return "\n".join(lines)
