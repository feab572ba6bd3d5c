"""Teacher and student side by side after distillation: evaluation metrics, parameter counts, inference speed-up."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

from torch import nn
from transformers import Trainer, TrainingArguments

from .cli import eval_prefix
from .profiling import inference_speedup, parameter_count

SUMMARY_NAME = "distillation_summary.json"


def evaluate_model(
    model: nn.Module,
    evaluation: dict[str, Any],
    like: TrainingArguments,
    collator: Callable,
    compute_metrics: Callable | None,
) -> dict[str, float]:
    """Evaluate `model` on each split with the batch size and precision of `like`; metrics named as in
    `evaluate_splits` (`eval_<metric>`, or `eval_<split>_<metric>` with several splits)."""
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="teacher_eval_") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_eval_batch_size=like.per_device_eval_batch_size,
            bf16=like.bf16,
            fp16=like.fp16,
            report_to="none",
            use_cpu=like.use_cpu,
            remove_unused_columns=like.remove_unused_columns,
        )
        trainer = Trainer(model=model, args=args, data_collator=collator, compute_metrics=compute_metrics)
        for split, dataset in evaluation.items():
            prefix = eval_prefix(split, len(evaluation))
            results.update(trainer.evaluate(eval_dataset=dataset, metric_key_prefix=prefix))
    return results


def distillation_summary(
    trainer: Trainer,
    teacher: nn.Module,
    teacher_name: str,
    student_results: dict[str, float],
    teacher_results: dict[str, float] | None = None,
    speed_batch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary written next to the student; `speed_batch` (model inputs) adds the measured inference speed-up."""
    student = trainer.accelerator.unwrap_model(trainer.model)
    summary: dict[str, Any] = {
        "teacher": {"name": teacher_name, "parameters": parameter_count(teacher), **(teacher_results or {})},
        "student": {"parameters": parameter_count(student), **student_results},
    }
    if speed_batch is not None and trainer.is_world_process_zero():
        batch = {name: value.to(student.device) for name, value in speed_batch.items()}
        summary["speedup"] = inference_speedup(teacher.to(student.device), student, batch)
        summary["speedup_batch_size"] = len(next(iter(batch.values())))
        summary["speedup_device"] = str(student.device)
    return summary


def format_summary(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines: sizes, every metric both models have, the speed-up."""
    teacher, student = summary["teacher"], summary["student"]
    lines = [f"teacher {teacher['parameters'] / 1e6:.2f}M params, student {student['parameters'] / 1e6:.2f}M params"]
    for key, value in student.items():
        is_metric = key.startswith("eval_") and not key.endswith(("_runtime", "_per_second", "_loss", "_samples"))
        if is_metric and key in teacher:
            lines.append(f"{key}: teacher {teacher[key]:.4f}, student {value:.4f}")
    if "speedup" in summary:
        device, batch = summary["speedup_device"], summary["speedup_batch_size"]
        lines.append(f"student speed-up: {summary['speedup']:.2f}x ({device}, batch {batch})")
    return lines


def write_summary(trainer: Trainer, summary: dict[str, Any]) -> None:
    """Write `distillation_summary.json` into the output folder and print the summary (main process only)."""
    if not trainer.is_world_process_zero():
        return
    with open(os.path.join(trainer.args.output_dir, SUMMARY_NAME), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    print("Distillation summary\n  " + "\n  ".join(format_summary(summary)))
