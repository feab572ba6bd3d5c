"""The projection heads' optimisation: a parameter group in the Trainer's optimizer, or, where that optimizer
cannot hold them (FSDP, DeepSpeed), an optimizer and learning-rate schedule of their own."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn
from transformers import Trainer, get_scheduler

from .config import WCoRDConfig

HEAD_OPTIMIZER_NAME = "wcord_head_optimizer.pt"


def add_head_parameter_group(
    optimizer: torch.optim.Optimizer, distiller: nn.Module, head_learning_rate: float | None
) -> None:
    """Add the heads' trainable parameters that `optimizer` does not hold yet (the Trainer hands back the same
    optimizer on a second call) as one parameter group: no weight decay, `lr=head_learning_rate` when set, else the
    optimizer's default."""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    head_params = [p for p in distiller.parameters() if p.requires_grad and id(p) not in held]
    if not head_params:
        return
    group: dict[str, Any] = {"params": head_params, "weight_decay": 0.0}
    if head_learning_rate is not None:
        group["lr"] = head_learning_rate
    optimizer.add_param_group(group)


class SeparateHeadOptimizer:
    """The heads' own optimizer and learning-rate schedule, for runs whose optimizer cannot hold them: DeepSpeed's
    ZeRO optimizers manage the parameters of the engine's module (the student) alone, and FSDP's preparation and
    optimizer checkpoints know the sharded student's parameters only.

    The optimizer is the Trainer's (`optim`, or `optimizer_cls_and_kwargs`) with `head_learning_rate` (else
    `learning_rate`) and no weight decay; the schedule is the Trainer's (`lr_scheduler_type`, warm-up) over
    `num_training_steps`, also when the DeepSpeed config has `optimizer` / `scheduler` sections for the student.
    [`step`] runs once per optimizer step of the student, after the gradients were clipped.
    """

    def __init__(
        self,
        distiller: nn.Module,
        args: WCoRDConfig,
        num_training_steps: int,
        optimizer_cls_and_kwargs: tuple[type[torch.optim.Optimizer], dict[str, Any]] | None = None,
    ) -> None:
        optimizer_cls, kwargs = optimizer_cls_and_kwargs or Trainer.get_optimizer_cls_and_kwargs(args)
        learning_rate = args.head_learning_rate if args.head_learning_rate is not None else args.learning_rate
        params = [p for p in distiller.parameters() if p.requires_grad]
        self.optimizer = optimizer_cls([{"params": params, "weight_decay": 0.0}], **{**kwargs, "lr": learning_rate})
        self.lr_scheduler = get_scheduler(
            args.lr_scheduler_type,
            optimizer=self.optimizer,
            num_warmup_steps=args.get_warmup_steps(num_training_steps),
            num_training_steps=num_training_steps,
            scheduler_specific_kwargs=args.lr_scheduler_kwargs,
        )

    def step(self) -> None:
        """One update of the heads, then the next learning rate."""
        self.optimizer.step()
        self.lr_scheduler.step()

    def save(self, output_dir: str) -> None:
        """Write the optimizer's and the schedule's state to `output_dir/wcord_head_optimizer.pt` atomically."""
        path = os.path.join(output_dir, HEAD_OPTIMIZER_NAME)
        state = {"optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict()}
        torch.save(state, f"{path}.partial")
        os.replace(f"{path}.partial", path)

    def load(self, checkpoint: str) -> bool:
        """Restore the state saved by [`save`] in `checkpoint` (read on the CPU; the optimizer moves it to its
        parameters' device); returns whether the checkpoint held one."""
        path = os.path.join(checkpoint, HEAD_OPTIMIZER_NAME)
        if not os.path.isfile(path):
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        return True
