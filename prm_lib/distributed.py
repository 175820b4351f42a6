"""Data-parallel training across processes, for ``accelerate launch`` and ``torchrun``.

The scaling-out appendix of the course. Both launchers start one process per GPU
(or per CPU slot) and tell each its place through environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). The
trainer then works as plain data parallelism:

* every process builds the same model (same seed) and rank 0's weights are
  broadcast, so all start identical;
* each global batch of ``batch_size`` solutions is split across the processes;
* after ``backward`` the gradients are summed across processes with one
  all-reduce, each weighted by its share of the batch's labelled steps, so the
  update is the one a single process would make on the whole batch;
* only rank 0 evaluates, shows progress and writes files.

Backend: NCCL on CUDA, Gloo on the CPU (what the CPU test uses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


SINGLE = ProcessGroup()


def from_environment() -> ProcessGroup:
    """The process group a launcher set up (initialised here once), or a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world_size} but {var} is not set: start with accelerate launch or torchrun")
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true")
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return ProcessGroup(rank, world_size, local_rank)


def device_for(group: ProcessGroup) -> str | None:
    """This process's device: its own GPU under a launcher, else the library's default choice."""
    if group.active and dist.get_backend() == "nccl":
        return f"cuda:{group.local_rank}"
    if group.active:
        return "cpu"
    return None


def broadcast_parameters(params: Iterable[torch.Tensor], group: ProcessGroup) -> None:
    """Make every process start from rank 0's weights."""
    if group.active:
        for p in params:
            dist.broadcast(p.data, src=0)


def all_reduce_gradients(params: list[torch.Tensor], share: float, group: ProcessGroup) -> None:
    """Replace each gradient by the sum over processes of ``share * gradient`` (one flat all-reduce).

    ``share`` is this process's fraction of the global batch's weight, so the result is the
    gradient of the loss over the whole global batch.
    """
    if not group.active:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads]) * share
    dist.all_reduce(flat)
    # a parameter no process used (an unused output layer, say) keeps grad None, as in one process,
    # so the optimizer leaves it alone instead of applying weight decay to a zero gradient
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=flat.device)
    dist.all_reduce(used)
    offset = 0
    for p, g, u in zip(params, grads, used.tolist()):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).to(p.dtype) if u > 0 else None
        offset += n


def all_reduce_sum(value: float, group: ProcessGroup, device: torch.device | str = "cpu") -> float:
    """The sum of ``value`` over processes."""
    if not group.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def barrier(group: ProcessGroup) -> None:
    if group.active:
        dist.barrier()


def shutdown(group: ProcessGroup) -> None:
    if group.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
