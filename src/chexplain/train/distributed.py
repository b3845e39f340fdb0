"""Distributed training helpers: process group from torchrun's environment, samplers, gathering.

Under ``torchrun --nproc_per_node N`` every process reads ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` joins the process group (NCCL on CUDA, gloo on CPU)
and pins each process to GPU ``LOCAL_RANK``. Without torchrun it is a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler

from ..errors import ChexplainError
from . import loop


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_torchrun() -> DistEnv:
    """The rank, world size and local rank torchrun sets (a single process without them)."""
    try:
        return DistEnv(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ChexplainError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None


def resolve_device(name: str, env: DistEnv) -> torch.device:
    """``name`` as a device (:func:`loop.resolve_device`); ``cuda`` becomes ``cuda:LOCAL_RANK``
    under torchrun."""
    device = loop.resolve_device(name)
    if device.type == "cuda":
        if env.distributed:
            if env.local_rank >= torch.cuda.device_count():
                raise ChexplainError(f"LOCAL_RANK {env.local_rank} but only "
                                     f"{torch.cuda.device_count()} GPU(s) visible")
            device = torch.device("cuda", env.local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    elif env.distributed and device.type != "cpu":
        raise ChexplainError(f"distributed training supports cuda and cpu, not {device.type}")
    return device


def init_distributed(device_name: str) -> tuple[DistEnv, torch.device]:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1; returns (env, this rank's device)."""
    env = env_from_torchrun()
    device = resolve_device(device_name, env)
    if env.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return env, device


def shutdown(env: DistEnv, together: bool = False) -> None:
    """Leave the process group. ``together=True`` (the normal end of the distributed work) waits
    at a barrier first, so that every rank tears gloo's or NCCL's connections down at the same
    time: a rank leaving while its peers still hold their connections can abort in the
    backend's teardown. After an exception the ranks leave one by one (a barrier could hang)."""
    if env.distributed and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


class ResumableSampler(DistributedSampler):
    """:class:`DistributedSampler` (a seeded shuffle per epoch, one shard per rank; with one
    process the whole permutation) that can start ``skip`` samples into its shard, to resume
    an epoch exactly where a checkpoint left it."""

    def __init__(self, dataset, env: DistEnv, seed: int = 0, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=env.world_size, rank=env.rank, shuffle=shuffle,
                         seed=seed, drop_last=False)
        self.skip = 0

    def set_position(self, epoch: int, skip: int = 0) -> None:
        self.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip:])

    def __len__(self) -> int:
        return max(self.num_samples - self.skip, 0)


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank`` in order, without padding (for evaluation:
    every sample is seen exactly once over all ranks)."""

    def __init__(self, n: int, env: DistEnv) -> None:
        self.indices = list(range(env.rank, n, env.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def all_gather_arrays(env: DistEnv, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Concatenate each array over ranks (rank order) on every rank."""
    if not env.distributed:
        return list(arrays)
    parts: list[Any] = [None] * env.world_size
    dist.all_gather_object(parts, [np.asarray(a) for a in arrays])
    return [np.concatenate([p[i] for p in parts]) for i in range(len(arrays))]


def all_reduce_sum(env: DistEnv, values: Sequence[float], device: torch.device) -> list[float]:
    """Sum plain numbers over ranks."""
    if not env.distributed:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
