"""Preparing the frozen teacher: freeze, eval mode, and placement through Accelerate (DeepSpeed included)."""

from __future__ import annotations

import copy

from accelerate import Accelerator
from torch import nn
from transformers.utils import logging

logger = logging.get_logger(__name__)


def freeze_teacher(teacher: nn.Module) -> nn.Module:
    """Put the teacher in eval mode with no trainable parameter, warning when some were trainable."""
    trainable = sum(p.numel() for p in teacher.parameters() if p.requires_grad)
    if trainable:
        logger.warning(
            f"The teacher had {trainable:,} trainable parameters; they are now frozen (requires_grad=False). "
            "The teacher is never updated during distillation."
        )
    teacher.requires_grad_(False)
    return teacher.eval()


def prepare_deepspeed(model: nn.Module, accelerator: Accelerator) -> nn.Module:
    """Wrap a frozen model in a DeepSpeed inference engine that matches the training run's ZeRO setup.

    As in TRL's trainers: under ZeRO-3 the teacher is sharded like the student (bucket sizes from its hidden size);
    under ZeRO-1/2 it only needs inference, so it runs with ZeRO disabled.
    """
    import deepspeed

    config_kwargs = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    stage = config_kwargs["zero_optimization"]["stage"]
    hidden_sizes = getattr(model.config, "hidden_sizes", None)
    hidden_size = max(hidden_sizes) if hidden_sizes else getattr(model.config, "hidden_size", None)
    if hidden_size is not None and stage == 3:
        config_kwargs.update(
            {
                "zero_optimization.reduce_bucket_size": hidden_size * hidden_size,
                "zero_optimization.stage3_param_persistence_threshold": 10 * hidden_size,
                "zero_optimization.stage3_prefetch_bucket_size": 0.9 * hidden_size * hidden_size,
            }
        )
    if stage != 3:
        config_kwargs["zero_optimization"]["stage"] = 0
    engine, *_ = deepspeed.initialize(model=model, config=config_kwargs)
    engine.eval()
    return engine


def prepare_teacher(teacher: nn.Module, accelerator: Accelerator, is_deepspeed_enabled: bool) -> nn.Module:
    """Freeze the teacher and place it for inference the way the student's run is set up."""
    freeze_teacher(teacher)
    if is_deepspeed_enabled:
        return prepare_deepspeed(teacher, accelerator)
    return accelerator.prepare_model(teacher, evaluation_mode=True)
