"""Page faults of a loop that allocates, touches and frees 96 MB per round, with the ``chexplain``
program's allocator setting (:mod:`chexplain.cli.allocator`) and with glibc's default, each in a
fresh process. Prints both counts and their ratio; asserts nothing (the counts depend on what else
the kernel is doing).

    python benchmarks/allocator_faults.py [--rounds 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CODE = ("import resource, sys, torch; from chexplain.cli.allocator import retain_freed_memory as r; "
        "ok = r(); a = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    t = [torch.ones(1 << 20) for _ in range(24)]\n"  # 24 × 4 MB allocated, touched and freed
        "    del t\n"
        "print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - a)")


def faults(rounds: int, **env: str) -> tuple[bool, int]:
    """(setting applied, minor page faults of the loop) in a fresh process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "CHEXPLAIN_MALLOC"}
    out = subprocess.run([sys.executable, "-c", CODE, str(rounds)], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("| run | retained: applied | retained: faults | glibc default: faults | ratio |")
    print("|---|---|---|---|---|")
    for k in range(args.repeat):
        applied, kept = faults(args.rounds)
        _, plain = faults(args.rounds, CHEXPLAIN_MALLOC="default")
        print(f"| {k + 1} | {applied} | {kept} | {plain} | {plain / max(kept, 1):.1f} |")


if __name__ == "__main__":
    main()
