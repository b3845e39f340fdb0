"""The hostile-input audit end to end (benchmarks/hostile_inputs.py): slow, CHEXPLAIN_SLOW=1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_hostile_inputs_have_no_bad_and_few_weak_outcomes(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hostile_inputs.py"), "--work",
                           str(tmp_path / "work")], capture_output=True, text=True, env=env, timeout=1800)
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"GOOD (\d+) / WEAK (\d+) / BAD (\d+) of (\d+) cases", last)
    assert m, proc.stdout[-2000:] + proc.stderr[-2000:]
    good, weak, bad, total = map(int, m.groups())
    assert total >= 60 and bad == 0 and weak <= 5, proc.stdout
    assert proc.returncode == 0
