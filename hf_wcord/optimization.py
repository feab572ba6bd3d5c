"""The projection heads in the Trainer's optimizer and gradient clipping."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def add_head_parameter_group(optimizer: Any, distiller: nn.Module, head_learning_rate: float | None) -> bool:
    """Add the heads' trainable parameters that `optimizer` does not hold yet as one parameter group (no weight
    decay; `lr=head_learning_rate` when set, else the optimizer's default). Returns whether a group was added.

    `optimizer` is a `torch.optim.Optimizer` or Accelerate's wrapper of one (both have `param_groups` and
    `add_param_group`).
    """
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    head_params = [p for p in distiller.parameters() if p.requires_grad and id(p) not in held]
    if not head_params:
        return False
    group: dict[str, Any] = {"params": head_params, "weight_decay": 0.0}
    if head_learning_rate is not None:
        group["lr"] = head_learning_rate
    optimizer.add_param_group(group)
    return True


def clip_head_gradients(distiller: nn.Module, max_norm: float) -> torch.Tensor:
    """Clip the heads' gradients to `max_norm` with a norm of their own, so that the student's clipping is the same
    with or without the heads."""
    return torch.nn.utils.clip_grad_norm_(distiller.parameters(), max_norm)
