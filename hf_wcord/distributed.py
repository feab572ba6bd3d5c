"""Helpers for runs over several processes: gathering embeddings with gradients, and checking that every rank
holds the same heads and negative stores."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0; the backward pass sums the gradients over processes and returns the local slice."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.start, ctx.rows = dist.get_rank() * tensor.shape[0], tensor.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.start : ctx.start + ctx.rows]


def is_distributed() -> bool:
    """Whether this process is one of several in an initialised `torch.distributed` group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the backward pass sums the gradients over processes too (each process' loss depends on
    every process' input through the sum)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over processes, differentiable (as `SyncBatchNorm`'s statistics); `tensor` itself in one
    process."""
    return _AllReduceSum.apply(tensor) if is_distributed() else tensor


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` (n, d) from every process along dim 0, keeping the autograd graph to the local part.

    The backward pass sums the incoming gradients over processes, so when every process computes the same loss on
    the gathered tensor and the gradients are then averaged (DDP), each process' parameters get the full gradient.
    """
    if not is_distributed():
        return tensor
    sizes = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], device=tensor.device))
    if len({int(size.item()) for size in sizes}) > 1:
        raise RuntimeError(
            f"`local_over_global_batch` needs equal batch sizes on every process, got {[int(s) for s in sizes]}: "
            "keep the Trainer's default even batches, or set `dataloader_drop_last=True`."
        )
    return _GatherWithGrad.apply(tensor)


@torch.no_grad()
def average_gradients(distiller: nn.Module, accelerator: Any) -> None:
    """Average the heads' gradients over processes in one flat all-reduce, so that every process keeps identical
    heads. Called once per optimizer step (with gradient accumulation, after the last micro-batch); the
    standardisers need no averaging, since their batch statistics are already those of the global batch."""
    grads = [parameter.grad for parameter in distiller.parameters() if parameter.grad is not None]
    if not grads:
        return
    flat = accelerator.reduce(torch.cat([grad.flatten() for grad in grads]), reduction="mean")
    for grad, averaged in zip(grads, flat.split([grad.numel() for grad in grads]), strict=True):
        grad.copy_(averaged.view_as(grad))


def state_digest(module: nn.Module) -> torch.Tensor:
    """A float64 fingerprint of every tensor in `module.state_dict()`: its sum, sum of squares and a
    position-weighted sum. Equal tensors give equal digests; a changed slot changes it."""
    parts = []
    for tensor in module.state_dict().values():
        values = tensor.detach().double().flatten()
        weights = torch.arange(1, values.numel() + 1, dtype=torch.float64, device=values.device) / values.numel()
        parts.append(torch.stack([values.sum(), (values * values).sum(), (values * weights).sum()]))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def check_ranks_agree(digests: torch.Tensor) -> None:
    """Raise when the per-rank digests `(num_processes, d)` of [`state_digest`] are not all equal."""
    differing = [rank for rank in range(1, digests.shape[0]) if not torch.equal(digests[rank], digests[0])]
    if differing:
        raise RuntimeError(
            f"The WCoRD projection heads or memory banks of processes {differing} differ from process 0's: every "
            "process must see the same bank updates and head gradients. Do not modify `trainer.distiller` on one "
            "process only, and launch every process with the same seed."
        )
