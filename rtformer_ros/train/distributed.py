"""torch.distributed for ``rtformer train`` under torchrun: process group, DDP wrapping, the few reductions.

``torchrun --nproc_per_node=N -m rtformer_ros.cli train ...`` (or the ``rtformer`` script) starts N processes
with RANK, LOCAL_RANK and WORLD_SIZE set; `Distributed.from_env` finds them, joins the process group (NCCL
on CUDA, gloo on CPU) and pins each process to GPU LOCAL_RANK. Without torchrun it is a one-process stand-in
whose reductions return their input, so the loop has a single code path.

Division of labour: every process trains on its share of each global batch (``IterationBatches(rank=,
world=)``) and scores its share of the validation frames; losses and confusion matrices are summed here;
rank 0 alone writes files and shows progress.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = ['Distributed', 'weights_digest']


def weights_digest(model: nn.Module) -> str:
    """sha256 of the parameters' bytes: equal on two processes exactly when their weights are bit-identical.

    Buffers are left out: BatchNorm running statistics follow rank 0 (DDP broadcasts them before each forward),
    so after a step every process holds the statistics of its own share until the next forward.
    """
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in the run.

    Attributes:
        rank: global rank (0 writes the files).
        local_rank: rank on this machine (its GPU index).
        world: number of processes.
        active: a process group is initialised (under torchrun, even with one process).
    """

    rank: int = 0
    local_rank: int = 0
    world: int = 1
    active: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed:
        """Join the torchrun process group if RANK/WORLD_SIZE are set, else a one-process stand-in.

        Args:
            device: the device type this run trains on; 'cuda' -> NCCL and the GPU ``LOCAL_RANK``, 'cpu' -> gloo.

        Raises:
            RuntimeError: more processes on this machine than GPUs (message names both).
        """
        if 'RANK' not in os.environ or 'WORLD_SIZE' not in os.environ:
            return cls()
        rank, world = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
        local_rank = int(os.environ.get('LOCAL_RANK', rank))
        if device.type == 'cuda':
            if local_rank >= torch.cuda.device_count():
                msg = (f'process with LOCAL_RANK {local_rank} but {torch.cuda.device_count()} GPU(s) here: start '
                       f'torchrun with --nproc_per_node at most the GPU count')
                raise RuntimeError(msg)
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
        return cls(rank, local_rank, world, True)

    def device(self, device: torch.device) -> torch.device:
        """This process's device: GPU LOCAL_RANK on CUDA."""
        return torch.device('cuda', self.local_rank) if device.type == 'cuda' and self.active else device

    def wrap(self, model: nn.Module, device: torch.device, sync_bn: bool) -> nn.Module:
        """DistributedDataParallel around ``model`` (SyncBatchNorm first if asked); the model itself without torchrun.

        DDP broadcasts rank 0's weights at construction, so every process starts from the same weights.
        """
        if not self.active:
            return model
        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [device.index] if device.type == 'cuda' else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def mean(self, values: list[float], device: torch.device) -> list[float]:
        """Mean of ``values`` over the processes (each averaged locally first, so all shares weigh the same)."""
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return (tensor / self.world).tolist()

    def sum_counts(self, counts: np.ndarray, device: torch.device) -> np.ndarray:
        """Integer counts (a confusion matrix) summed over the processes: exact."""
        if not self.active:
            return counts
        tensor = torch.from_numpy(np.ascontiguousarray(counts, np.int64)).to(device)
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when ``flag`` is true on one (e.g. the time limit): all stop at the same step."""
        if not self.active:
            return flag
        tensor = torch.tensor([int(flag)], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every process, as DDP does before a training
        forward: evaluation then scores on all processes the model that rank 0 saves."""
        if self.active:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def gather(self, text: str) -> list[str]:
        """``text`` of every process, in rank order."""
        if not self.active:
            return [text]
        out: list[str] = [''] * self.world
        dist.all_gather_object(out, text)
        return out

    def close(self) -> None:
        """Leave the process group after a clean finish, all processes together.

        The barrier first: rank 0 may still be writing checkpoints and plots when the others finish, and a gloo
        process once aborted ('terminate called without an active exception') tearing the group down then.
        """
        if self.active and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
