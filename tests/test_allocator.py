"""The ``chexplain`` program's allocator setting (glibc's mallopt), each case in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = ("import resource, torch; from chexplain.cli.allocator import retain_freed_memory as r; ok = r(); "
        "a = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(20):\n"
        "    t = [torch.ones(1 << 20) for _ in range(24)]\n"  # 24 × 4 MB allocated, touched and freed
        "    del t\n"
        "print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - a)")


def _run(**env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "CHEXPLAIN_MALLOC"}
    out = subprocess.run([sys.executable, "-c", CODE], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_retained_memory_is_reused_without_page_faults() -> None:
    applied, faults = _run()
    if applied != "True":
        pytest.skip("this C library has no mallopt (not glibc)")
    plain, plain_faults = _run(CHEXPLAIN_MALLOC="default")
    assert plain == "False"
    # 96 MB freed per round: glibc returns most of it to the kernel and faults it in again
    # (≈ 24,000 pages per round); kept, only the first round faults
    assert plain_faults > 5 * faults, (plain_faults, faults)


# a preload that does not exist is ignored by the loader (with a message): the name alone counts
@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "100000"}, {"LD_PRELOAD": "libjemalloc.so.2"}])
def test_user_allocator_settings_are_left_alone(env: dict[str, str]) -> None:
    assert _run(**env)[0] == "False"
