"""Model size and inference-speed measurements reported next to a distilled student."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ..teacher_inputs import student_inputs, teacher_inputs


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (trainable or not), whole also where DeepSpeed ZeRO-3 partitions them (`ds_numel`)."""
    return sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())


@torch.no_grad()
def seconds_per_batch(model: nn.Module, batch: dict[str, Any], repeats: int = 5) -> float:
    """Mean wall time of a forward pass in eval mode over `repeats` runs, after one warm-up run."""
    was_training = model.training
    model.eval()
    model(**batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        model(**batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    model.train(was_training)
    return (time.perf_counter() - start) / repeats


def inference_speedup(teacher: nn.Module, student: nn.Module, batch: dict[str, Any], repeats: int = 5) -> float:
    """How many times faster the student's forward pass is than the teacher's on the same examples (each model
    reads its own tokenization when the batch carries the teacher's `teacher_*` inputs)."""
    teacher_seconds = seconds_per_batch(teacher, teacher_inputs(batch), repeats)
    return teacher_seconds / seconds_per_batch(student, student_inputs(batch), repeats)
