"""torchrun support: join the process group torchrun describes in the environment (gloo on CPU, NCCL on CUDA)."""

from __future__ import annotations

import os

import torch



def init_from_environment() -> int:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1); returns this process's rank."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.get_rank() if dist.is_initialized() else 0
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank()


def local_device(preference: str) -> torch.device:
    """The recipe's device; under torchrun on CUDA, this process's own GPU."""
    from edgekd.train import select_device

    device = select_device(preference)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
