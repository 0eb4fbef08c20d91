"""Where training and inference run: the device a recipe asks for, torchrun's process group (gloo on CPU, NCCL on
CUDA), and seeded scopes for random initialisation that leave the global random state as it was."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from edgekd.errors import EdgekdError


def select_device(preference: str) -> torch.device:
    """The recipe's device choice, checked against what this machine has; under torchrun on CUDA, this process's
    own GPU."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise EdgekdError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(preference)


def init_from_environment() -> int:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1); returns this process's rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.get_rank() if dist.is_initialized() else 0
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank()


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def leave_process_group() -> None:
    """Done with the other ranks (what follows runs on this process alone, its barriers then no-ops)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share(value):
    """Rank 0's value, on every rank under torchrun (each must call it); the value itself in one process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return value


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Random initialisation inside the block draws from `seed` alone; the global CPU random state is restored
    after it, so what is built elsewhere does not depend on the order things were built in."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
