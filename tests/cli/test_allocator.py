"""The ``chexplain`` program's allocator setting (glibc's mallopt), each case in a fresh process.

Whether it applies is decided by the platform and the environment, and that is what these tests
check. Its effect on page faults depends on what else the kernel is doing, so it is measured by
``benchmarks/allocator_faults.py``, which reports instead of asserting.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "from chexplain.cli.allocator import retain_freed_memory as r; print(r())"


def _applied(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "CHEXPLAIN_MALLOC"}
    return subprocess.run([sys.executable, "-c", CODE], env={**clean, **env}, capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_applied_by_default_and_opted_out_by_name() -> None:
    if _applied() != "True":
        pytest.skip("this C library has no mallopt (not glibc)")
    assert _applied(CHEXPLAIN_MALLOC="default") == "False"


# a preload that does not exist is ignored by the loader (with a message): the name alone counts
@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "100000"}, {"LD_PRELOAD": "libjemalloc.so.2"}])
def test_user_allocator_settings_are_left_alone(env: dict[str, str]) -> None:
    assert _applied(**env) == "False"
