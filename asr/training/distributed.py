"""The torchrun environment: which process this is, its device, the process group, and the few collectives the
trainer needs. A plain `asr-train` (no RANK/WORLD_SIZE in the environment) is a world of one and never touches
torch.distributed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class Dist:
    """rank among world_size processes (torchrun's RANK/WORLD_SIZE), local_rank on this node, and the device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and the progress bar."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of a few numbers over all ranks (epoch statistics)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def from_main(self, values: list[float]) -> list[float]:
        """Rank 0's numbers on every rank: decisions that must agree (stop, checkpoint) or DDP hangs."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return t.tolist()

    def gather(self, obj: object) -> list:
        """Every rank's picklable object, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto`: this process's GPU (cuda:LOCAL_RANK) when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device=cuda: no CUDA device is visible (use device=cpu or auto)")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"device={name!r}: use auto, cuda or cpu")


def setup(device: str = "auto") -> Dist:
    """Read torchrun's environment and, in a world of more than one, join the process group: NCCL between
    GPUs, gloo between CPU processes. MASTER_ADDR/MASTER_PORT come from torchrun too."""
    try:
        rank = int(os.environ.get("RANK", 0))
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    except ValueError as err:
        raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers ({err})") from None
    env = Dist(rank, world_size, local_rank, pick_device(device, local_rank))
    if env.enabled and not dist.is_initialized():
        if env.device.type == "cuda":
            torch.cuda.set_device(env.device)
            dist.init_process_group("nccl", rank=rank, world_size=world_size, device_id=env.device)
        else:
            dist.init_process_group("gloo", rank=rank, world_size=world_size)
    return env
