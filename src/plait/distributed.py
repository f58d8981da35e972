"""Several processes training one model: who this process is, the process group, and what crosses between ranks.

plait runs on PyTorch's own distributed engine; it starts no processes itself. A launcher does: `torchrun` (which
sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT), Open MPI's `mpirun` (OMPI_COMM_WORLD_RANK,
_SIZE, _LOCAL_RANK) or another PMI launcher (PMI_RANK, PMI_SIZE). Without one, the world is this process alone and
nothing here does anything.

Every rank walks the same global data order and takes its share of each global batch (`train.batch_size` is the
global batch), so N processes follow the loss curve of one process with the same batch. Rank 0 alone writes
checkpoints, logs, plots and evaluations.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from plait.data.division import ALONE, Division
from plait.errors import PlaitError

LAUNCHERS = (  # (rank, size, local rank, local size) variables, in the order they are looked for
    ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"),
    ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
)
DEFAULT_ADDRESS, DEFAULT_PORT = "127.0.0.1", 29500


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1  # the processes on this machine

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.size > 1


def world_from_env(env=None) -> World:
    """This process's place among the launcher's processes (a world of one when no launcher set the variables)."""
    env = os.environ if env is None else env
    for rank, size, local, local_size in LAUNCHERS:
        if rank in env and size in env:
            try:
                return World(int(env[rank]), int(env[size]), int(env.get(local, 0)), int(env.get(local_size, 1)))
            except ValueError:
                raise PlaitError(f"{rank}={env[rank]!r}, {size}={env[size]!r}: not whole numbers") from None
    return World()


_world = World()


def current() -> World:
    return _world


def start(env=None, address: str | None = None, port: int | None = None, use_cuda: bool = False) -> World:
    """Join the launcher's process group (gloo on CPU, NCCL on GPU): the master's address and port come from
    MASTER_ADDR / MASTER_PORT (torchrun sets them), else `address` / `port`, else 127.0.0.1:29500."""
    global _world
    env = os.environ if env is None else env
    world = world_from_env(env)
    if world.is_distributed and not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", address or DEFAULT_ADDRESS)
        os.environ.setdefault("MASTER_PORT", str(port or DEFAULT_PORT))
        if use_cuda:
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=world.rank, world_size=world.size,
                                timeout=timedelta(minutes=30))
    _world = world
    return world


def stop() -> None:
    global _world
    if dist.is_initialized():
        dist.destroy_process_group()
    _world = World()


def share(value, world: World | None = None):
    """Rank 0's `value` on every rank (any picklable object)."""
    world = world or _world
    if not world.is_distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def total(tensor: torch.Tensor, world: World | None = None) -> torch.Tensor:
    """The element-wise sum of `tensor` over the ranks."""
    world = world or _world
    if not world.is_distributed:
        return tensor
    summed = tensor.clone()
    dist.all_reduce(summed)
    return summed


def gather(value, world: World | None = None) -> list:
    """Every rank's `value` (any picklable object), in rank order, on every rank."""
    world = world or _world
    if not world.is_distributed:
        return [value]
    values = [None] * world.size
    dist.all_gather_object(values, value)
    return values


def broadcast_weights(model: torch.nn.Module, world: World | None = None) -> None:
    """Rank 0's parameters and buffers copied into every rank's `model` (in place)."""
    if (world or _world).is_distributed:
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def barrier(world: World | None = None) -> None:
    if (world or _world).is_distributed:
        dist.barrier()


def shard(indices: torch.Tensor, world: World | None = None) -> torch.Tensor:
    """This rank's contiguous share of a global batch (the first ranks get one row more when it does not divide)."""
    world = world or _world
    if not world.is_distributed:
        return indices
    return indices.tensor_split(world.size)[world.rank]


def cache_division(folder: Path, world: World | None = None) -> Division:
    """This process's place among those that fill the cache `folder` together: the processes that see the same folder
    (every process on one machine, or on several sharing a network file system; else each machine's own). Found by
    each process leaving a marker in the folder and looking for the others'; every process must call it."""
    world = world or _world
    if not world.is_distributed:
        return ALONE
    markers = Path(folder) / f".processes-{share(uuid.uuid4().hex, world)}"
    markers.mkdir(parents=True, exist_ok=True)
    (markers / str(world.rank)).touch()
    barrier(world)
    members = sorted(int(marker.name) for marker in markers.iterdir() if marker.name.isdigit())
    barrier(world)
    if world.rank == members[0]:
        shutil.rmtree(markers, ignore_errors=True)
    return Division(members.index(world.rank), len(members), members[0], lambda value: gather(value, world))
