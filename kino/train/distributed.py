"""Running the trainer on several processes with PyTorch's own engine: torchrun, DDP or FSDP2.

Launch: `torchrun --nproc-per-node N -m kino train dit ... --parallel ddp|fsdp` (multi-node: add
--nnodes, --node-rank or a rendezvous; docs/training.md). torchrun sets RANK, WORLD_SIZE and LOCAL_RANK;
`init_distributed` joins the process group (NCCL on CUDA, gloo on CPU) and `distribute` wraps a
DiTTrainer:
  - ddp: torch.nn.parallel.DistributedDataParallel; every rank holds the whole model, gradients are
    all-reduced (averaged) in backward;
  - fsdp: FSDP2 (`torch.distributed.fsdp.fully_shard`): parameters, gradients and optimizer state are
    sharded over ranks. The sharding units are each block's attention, cross-attention and MLP; the
    rest (embedders, the blocks' adaLN tables, the final layer) forms the root unit, because the DiT
    reads every block's adaLN table before running the blocks. The EMA copy is sharded the same way,
    so its update stays shard-local.
Each rank draws a disjoint share of the global batch (kino.train.data), and checkpoints are DCP shards
(kino.train.checkpoint) that reload on another world size.
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from enum import StrEnum

import torch
import torch.distributed as dist

from kino.errors import DependencyError, InputError


class Parallel(StrEnum):
    NONE = "none"
    DDP = "ddp"
    FSDP = "fsdp"


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    parallel: Parallel = Parallel.NONE

    @property
    def active(self) -> bool:
        return self.parallel is not Parallel.NONE

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_world_size() -> int:
    """WORLD_SIZE as torchrun set it (1 when started without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(parallel: Parallel | str, device: torch.device | str) -> tuple[DistInfo, torch.device]:
    """Join torchrun's process group when `parallel` asks for it; returns this rank's info and device."""
    parallel = Parallel(parallel)
    device = torch.device(device)
    world = launched_world_size()
    if parallel is Parallel.NONE:
        if world > 1:
            raise InputError(f"torchrun started {world} processes but --parallel is none; use --parallel ddp or fsdp")
        return DistInfo(), device
    if "RANK" not in os.environ:
        raise InputError(f"--parallel {parallel} needs torchrun: torchrun --nproc-per-node N -m kino train dit ... "
                         f"--parallel {parallel}")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    return DistInfo(rank, world, local, parallel), device


def shutdown() -> None:
    """Leave the process group (at the end of a run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def distribute(trainer, info: DistInfo) -> None:
    """Wrap a freshly built DiTTrainer for DDP or FSDP2 in place (before any step or resume)."""
    trainer.dist = info
    if info.parallel is Parallel.NONE:
        return
    if info.parallel is Parallel.DDP:
        from torch.nn.parallel import DistributedDataParallel

        ids = [trainer.device.index] if trainer.device.type == "cuda" else None
        ddp = DistributedDataParallel(trainer.model, device_ids=ids)  # broadcasts rank 0's weights
        trainer.forward = ddp
        trainer.sync = lambda last: nullcontext() if last else ddp.no_sync()
    else:
        from torch.distributed.device_mesh import init_device_mesh

        # The MLP (an nn.Sequential) returns a view; FSDP2 warns in case a caller changes it in place.
        # The DiT only reads it (gated() is out of place), so the warning is noise in every step's log.
        warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
        mesh = init_device_mesh(trainer.device.type, (info.world_size,))
        shard_dit(trainer.model, mesh)
        shard_dit(trainer.ema, mesh)
        trainer.opt = trainer.make_optimizer()  # over the sharded (DTensor) parameters
        trainer.forward = trainer.model
        trainer.sync = lambda last: GradientSync(trainer.model, last)
    if trainer.cfg.compile:
        trainer.model.compile_blocks()  # again after wrapping (the trainer compiled before; in place, idempotent)


def shard_dit(model: torch.nn.Module, mesh) -> None:
    """fully_shard each block's attention, cross-attention and MLP, then the root (see the module doc)."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:
        raise DependencyError(f"--parallel fsdp needs torch >= 2.6 (FSDP2's fully_shard); this is torch "
                              f"{torch.__version__}; upgrade torch or use --parallel ddp") from None

    for block in model.blocks:
        for part in (block.attn, block.cross, block.mlp):
            fully_shard(part, mesh=mesh)
    fully_shard(model, mesh=mesh)


class GradientSync:
    """FSDP2's no_sync: reduce-scatter gradients only on the last micro-batch of a step."""

    def __init__(self, model, last: bool) -> None:
        self.model, self.last = model, last

    def __enter__(self) -> None:
        self.model.set_requires_gradient_sync(self.last)

    def __exit__(self, *exc) -> None:
        self.model.set_requires_gradient_sync(True)


def mean_over_ranks(values: list[float], info: DistInfo) -> list[float]:
    """Average floats over ranks (a loss for rank-0 logging); identity on one process."""
    return [v / info.world_size for v in sum_over_ranks(values, info)]


def sum_over_ranks(values: list[float], info: DistInfo) -> list[float]:
    """Sum floats over ranks; identity on one process."""
    if not info.active:
        return values
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return t.tolist()


def full_state_dict(module: torch.nn.Module, info: DistInfo) -> dict[str, torch.Tensor] | None:
    """The whole state dict on rank 0, on the CPU (collective under FSDP2); None on other ranks."""
    if info.parallel is not Parallel.FSDP:
        return {k: v.detach().cpu() for k, v in module.state_dict().items()} if info.is_main else None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return sd if info.is_main else None


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()
