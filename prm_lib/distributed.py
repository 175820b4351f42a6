"""Training on several processes through ``accelerate``: data parallel (DDP) or sharded (FSDP).

The scaling-out appendix of the course. The trainer hands its model and optimizer
to an ``accelerate.Accelerator``; the launcher decides the rest. ``accelerate
launch`` (with ``--multi_gpu`` or a ``--config_file``, e.g. ``prm_lib/accelerate_fsdp.yaml``)
and ``torchrun`` start one process per device, and the Accelerator reads its place
from their environment. One process (a notebook, ``python -m prm_lib train``)
gets a plain single-device Accelerator: the same code, nothing distributed.

What ``prm_lib`` adds on top is one rule, so that the update does not depend on
how a global batch was split: each loss term averages over something (labelled
steps, summed step weights, step pairs), and processes and micro-batches get
different amounts of it, so each term's sum is divided by the amount summed over
*every* process and micro-batch of the step (``reduce_sum_tensor``), times
``1 / n_processes`` for the engine's mean over processes
(``prm_lib.train.Trainer.backward``): the gradient is then exactly the
one-process, one-batch gradient, for every loss option.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType

if TYPE_CHECKING:
    from .model import ProcessRewardModel

# FSDP2 settings shipped with the library: accelerate launch --config_file <this file> -m prm_lib train ...
FSDP_CONFIG = Path(__file__).with_name("accelerate_fsdp.yaml")
# accelerate routes a launch to FSDP only on accelerators (its CPU multi-process mode is DDP);
# set to 1 to take accelerate's FSDP2 path on CPU processes with Gloo (used to test FSDP without a GPU)
FSDP_ON_CPU_ENV = "PRM_LIB_FSDP_ON_CPU"


def launched() -> bool:
    """True under ``accelerate launch`` / ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def make_accelerator(device: str | torch.device | None = None) -> Accelerator:
    """The Accelerator for this process: the launcher's set-up, or one process on ``device``.

    In one process (a notebook training several models one after the other, say) the
    shared state of an earlier Accelerator on another device is dropped first, so the
    device asked for is the device used.
    """
    if launched():
        if device is not None and torch.device(device).type == "cuda" and torch.device(device).index is not None:
            raise ValueError(f"device {device} names one GPU, but the launcher gives each process its own")
        # accelerate runs processes on the CPU (Gloo) only when told to; with no GPU that is the only way
        cpu = (device is not None and torch.device(device).type == "cpu") or not torch.cuda.is_available()
        accelerator = Accelerator(cpu=cpu, device_placement=False)
        if os.environ.get(FSDP_ON_CPU_ENV) == "1":
            _force_fsdp2_on_cpu(accelerator)
        return accelerator
    want_cpu = device is not None and torch.device(device).type == "cpu"
    state = AcceleratorState._shared_state
    if state and state.get("_cpu") != want_cpu:
        AcceleratorState._reset_state(reset_partial_state=True)
    # the model is already where the caller put it (device_placement=False): accelerate moves nothing
    return Accelerator(cpu=want_cpu, device_placement=False)


def _force_fsdp2_on_cpu(accelerator: Accelerator) -> None:
    """Switch a CPU multi-process Accelerator onto accelerate's own FSDP2 code path.

    accelerate reads the FSDP settings a launch was given (``accelerate launch --config_file
    prm_lib/accelerate_fsdp.yaml``) but only uses them on GPUs; PyTorch's FSDP2 itself runs on CPU with
    Gloo. Only for testing the FSDP path where no GPU is at hand.
    """
    from accelerate.utils import FullyShardedDataParallelPlugin

    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        raise RuntimeError(f"{FSDP_ON_CPU_ENV}=1 is for CPU processes, but this launch is {state.distributed_type}")
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        raise RuntimeError(f"{FSDP_ON_CPU_ENV}=1 needs an FSDP launch: accelerate launch --config_file prm_lib/accelerate_fsdp.yaml")
    plugin = FullyShardedDataParallelPlugin()  # reads the launch's FSDP_* settings
    if plugin.fsdp_version != 2:
        raise RuntimeError("FSDP on CPU is tested with FSDP2 only (fsdp_version: 2 in the config)")
    if state.mixed_precision != "no":  # as accelerate does for a GPU launch
        plugin.set_mixed_precision(state.mixed_precision)
    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP  # what accelerate copies back


def is_fsdp(accelerator: Accelerator) -> bool:
    """True when the model is sharded across processes (FSDP)."""
    return accelerator.distributed_type == DistributedType.FSDP


def reduce_sum_tensor(values: torch.Tensor, accelerator: Accelerator) -> torch.Tensor:
    """The elementwise sum of a small tensor over processes (computed in float64, returned in its dtype)."""
    if accelerator.num_processes == 1:
        return values
    summed = accelerator.reduce(values.detach().to(accelerator.device, torch.float64), reduction="sum")
    return summed.to(values.device, values.dtype)


def reduce_sum(value: float, accelerator: Accelerator) -> float:
    """The sum of ``value`` over processes (float64, so counts stay exact)."""
    if accelerator.num_processes == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=accelerator.device)
    return float(accelerator.reduce(t, reduction="sum").item())


def shutdown(accelerator: Accelerator) -> None:
    """Wait for every process, then close the process group a launcher opened."""
    if accelerator.num_processes > 1:
        accelerator.wait_for_everyone()
        accelerator.end_training()
        PartialState().destroy_process_group()


def gather_model(accelerator: Accelerator, wrapped: torch.nn.Module, model: "ProcessRewardModel") -> "ProcessRewardModel | None":
    """A whole, unsharded copy of an FSDP-trained PRM on rank 0's CPU (None on the other ranks).

    Every process must call it: each contributes its shards to the gather.
    """
    from .model import ProcessRewardModel

    state = accelerator.get_state_dict(wrapped)
    if not accelerator.is_main_process:
        return None
    copy = ProcessRewardModel.from_backbone(model.backbone_name, device="cpu", dtype=torch.float32,
                                            n_layers=model.n_layers, separator=model.separator, max_length=model.max_length,
                                            objective=model.objective,  # a gathered ORM is saved as one
                                            # and a PRM reading the LM's surprise keeps its reader (its weights are in state)
                                            surprise_from=model.surprise_source.name if model.surprise_source else None)
    copy.load_state_dict({k: v.float() for k, v in state.items()})
    copy.backbone_changed = model.backbone_changed
    return copy.eval()
