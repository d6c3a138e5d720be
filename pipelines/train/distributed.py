"""Data-parallel training under ``torchrun``: process group set-up, sharding, reductions.

``torchrun --nproc_per_node N -m evrobust.pipelines.cli.app train ...`` (or the ``evrobust`` script) runs the
same command in N processes. Each process reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the environment;
the group uses NCCL on CUDA and gloo on CPU. Every rank draws the same per-epoch permutation of the training
set and takes every ``world_size``-th sample of it (DistributedSampler-style; the permutation is padded by
wrapping so all ranks run the same number of steps). Only rank 0 writes the run directory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the (possibly single-process) job.

    Attributes:
        rank, world_size, local_rank: as set by torchrun (0, 1, 0 without it).
        device: the device this process trains on.
        owns_group: whether :func:`setup_distributed` created the process group (and must destroy it).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def pick_device(choice: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cuda`` -> the local rank's GPU (UserInputError if none)."""
    from evrobust.errors import UserInputError

    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise UserInputError(
                "--device cuda was asked for but no CUDA device is available; use --device cpu"
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def setup_distributed(device_choice: str) -> DistContext:
    """Join the torchrun process group if ``WORLD_SIZE > 1`` (gloo on CPU, NCCL on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_choice, local_rank)
    owns = False
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        owns = True
        log.info("rank %d/%d joined the %s process group on %s", rank, world_size, backend, device)
    return DistContext(rank, world_size, local_rank, device, owns)


def teardown_distributed(ctx: DistContext) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``values`` over ranks (returns the input unchanged in a single process)."""
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in a single process)."""
    if not ctx.distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The training order of ``epoch``: a permutation of ``range(n)`` that depends only on (seed, epoch).

    Depending on nothing else makes an interrupted-and-resumed run see the same order as an uninterrupted
    one, and lets every rank compute the same permutation without communication.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Every ``world_size``-th element of ``order`` from ``rank``, after padding by wrapping around so that
    all ranks get ``ceil(n / world_size)`` elements (the DistributedSampler rule)."""
    if world_size == 1:
        return order
    per_rank = -(-order.numel() // world_size)
    total = per_rank * world_size
    if total > order.numel():
        order = order.repeat(-(-total // order.numel()))[:total]
    return order[rank:total:world_size]
