"""Iterations per second of the MNIST training loop (Bach et al. 2015, experiment II: 784-1296-
1296-1296-10, batch 25) beside the bare forward + backward + Adam step of the same net on a
fixed batch (the floor no data pipeline can beat), in one run.

    python benchmarks/mnist_speed.py --iterations 2000 [--device cuda] [--data ../shared/data/mnist]

Prints the loop's it/s, the bare step's it/s and their ratio, and the projected wall time of
the study's 1,000,000 iterations.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chexplain.studies.mnist.data import load_mnist  # noqa: E402
from chexplain.studies.mnist.experiments import get_experiment  # noqa: E402
from chexplain.studies.mnist.model import mnist_mlp  # noqa: E402
from chexplain.studies.mnist.train import TrainConfig, train_mnist  # noqa: E402


def bare_steps(experiment: str, n: int, device: str) -> float:
    """it/s of forward + backward + Adam on one fixed batch of 25 (no data, no augmentation)."""
    model = mnist_mlp(get_experiment(experiment)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    x = torch.randn(25, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (25,), device=device)
    for k in range(n + 20):
        if k == 20:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--experiment", default="2-relu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=None, help="MNIST idx folder (default: the 5,000-digit sample)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_mnist(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(experiment=args.experiment, iterations=args.iterations, device=args.device,
                          checkpoint_every=0)
        m = train_mnist(cfg, data, tmp, progress=False)
    loop = args.iterations / m["train_seconds"]
    bare = bare_steps(args.experiment, args.iterations, args.device)
    print(f"{args.experiment} on {args.device} ({torch.get_num_threads()} threads), batch 25, "
          f"{args.iterations} iterations: loop {loop:.1f} it/s, bare forward+backward+Adam "
          f"{bare:.1f} it/s, loop/bare {loop / bare:.2f}; 1,000,000 iterations: "
          f"{1e6 / loop / 3600:.1f} h at this speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
