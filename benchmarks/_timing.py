"""Shared timing helpers for the benchmarks: interleaved rounds, median wall time per case.

Cases are timed round-robin (every case once per round) so that a change of machine load
during the run affects all of them alike; the ratios printed are of medians over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from chexplain.cli.allocator import retain_freed_memory


def allocator_option(parser: argparse.ArgumentParser) -> None:
    """``--allocator glibc|retain`` (see :mod:`chexplain.cli.allocator`)."""
    parser.add_argument("--allocator", choices=("glibc", "retain"), default="glibc",
                        help="glibc: its default, which returns freed memory to the kernel; retain: keep it, as "
                             "the chexplain program does (chexplain.cli.allocator)")


def apply_allocator(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.allocator == "retain" and not retain_freed_memory():
        parser.error("--allocator retain needs Linux with glibc and no MALLOC_* variables or preloaded allocator")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def samples(cases: dict[str, Callable[[], object]], rounds: int = 3, device: str = "cpu", warm: bool = True,
            verbose: bool = True) -> dict[str, list[tuple[float, float]]]:
    """(wall seconds, process CPU seconds) of every call per case, over ``rounds`` round-robin
    rounds, after one warm-up call each when ``warm`` (it pays for tracing and caches). With
    ``verbose`` every timing is printed as it comes."""
    def clock(fn: Callable[[], object]) -> tuple[float, float]:
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        return time.perf_counter() - t, time.process_time() - c

    for name, fn in cases.items() if warm else ():
        wall = clock(fn)[0]
        if verbose:
            print(f"  warm-up  {name}: {wall:.3f} s", flush=True)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for r in range(rounds):
        for name, fn in cases.items():
            times[name].append(clock(fn))
            if verbose:
                print(f"  round {r + 1}  {name}: {times[name][-1][0]:.3f} s", flush=True)
    return times


def interleaved(cases: dict[str, Callable[[], object]], rounds: int = 3, device: str = "cpu",
                verbose: bool = True, clock: str = "wall") -> dict[str, float]:
    """Median seconds per case of :func:`samples`: wall time, or with ``clock="cpu"`` the
    process's CPU time (with one thread, the work done, robust to other jobs on the machine)."""
    k = {"wall": 0, "cpu": 1}[clock]
    return {name: statistics.median(t[k] for t in ts)
            for name, ts in samples(cases, rounds, device, verbose=verbose).items()}


def table(rows: dict[str, float], reference: str, second: str | None = None) -> str:
    """Seconds per case with the ratio to ``reference`` (and to ``second`` when given)."""
    head = f"{'':46s} {'seconds':>9s} {'× ' + reference:>22s}"
    if second:
        head += f" {'× ' + second:>12s}"
    lines = [head]
    for name, sec in rows.items():
        line = f"{name:46s} {sec:9.3f} {sec / rows[reference]:22.2f}"
        if second:
            line += f" {sec / rows[second]:12.2f}"
        lines.append(line)
    return "\n".join(lines)
