"""Teacher and student side by side after distillation: evaluation metrics, parameter counts, inference speed-up."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from transformers import EvalPrediction, Trainer
from transformers.utils import logging

from ..teacher_inputs import LABEL_COLUMNS
from .cli import eval_prefix
from .profiling import inference_speedup, parameter_count

logger = logging.get_logger(__name__)

SUMMARY_NAME = "distillation_summary.json"


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    evaluation: dict[str, Any],
    trainer: Trainer,
    collator: Callable,
    compute_metrics: Callable | None,
) -> dict[str, float]:
    """Evaluate `model` (the distillation trainer's teacher, as the trainer prepared it) on each split as `trainer`
    evaluates the student: the trainer's accelerator splits the batches over the processes (each process runs every
    forward pass, which a model sharded by FSDP or ZeRO-3 needs) and gathers the predictions. Returns `eval_loss`
    (when the model returns a loss) and the metrics, named as in `evaluate_splits` (`eval_<metric>`, or
    `eval_<split>_<metric>` with several splits)."""
    accelerator = trainer.accelerator
    was_training = model.training
    model.eval()
    results: dict[str, float] = {}
    for split, dataset in evaluation.items():
        prefix = eval_prefix(split, len(evaluation))
        if trainer.args.remove_unused_columns:
            dataset = model_columns(dataset, accelerator.unwrap_model(model))
        loader = DataLoader(dataset, batch_size=trainer.args.per_device_eval_batch_size, collate_fn=collator)
        logits, labels, losses = [], [], []
        for batch in accelerator.prepare_data_loader(loader):
            with accelerator.autocast():  # the run's mixed precision, as the Trainer evaluates
                outputs = model(**batch)
            batch_logits, batch_labels = accelerator.gather_for_metrics((outputs.logits, batch["labels"]))
            logits.append(batch_logits.float().cpu())
            labels.append(batch_labels.cpu())
            if outputs.get("loss") is not None:
                losses.append(accelerator.gather_for_metrics(outputs.loss.float().repeat(len(batch["labels"]))))
        if losses:
            results[f"{prefix}_loss"] = torch.cat(losses).mean().item()
        if compute_metrics is not None:
            prediction = EvalPrediction(predictions=torch.cat(logits).numpy(), label_ids=torch.cat(labels).numpy())
            results.update({f"{prefix}_{name}": value for name, value in compute_metrics(prediction).items()})
    model.train(was_training)
    return results


def model_columns(dataset: Any, model: nn.Module) -> Any:
    """`dataset` without the columns that `model.forward` does not take (labels kept), as the Trainer does."""
    accepted = set(inspect.signature(model.forward).parameters) | set(LABEL_COLUMNS)
    return dataset.remove_columns([name for name in dataset.column_names if name not in accepted])


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
    rows = getattr(trainer, "training_rows", None)
    if rows is not None:
        summary["training_rows"] = {"labelled": rows[0], "unlabeled": rows[1]}
    if speed_batch is not None and (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        logger.info("The inference speed-up is not measured: FSDP or DeepSpeed shards the models over the processes.")
    elif speed_batch is not None and trainer.is_world_process_zero():
        batch = {name: value.to(student.device) for name, value in speed_batch.items()}
        summary["speedup"] = inference_speedup(teacher.to(student.device), student, batch)
        summary["speedup_batch_size"] = len(next(iter(batch.values())))
        summary["speedup_device"] = str(student.device)
    return summary


def format_summary(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines: sizes, every metric both models have, the speed-up."""
    teacher, student = summary["teacher"], summary["student"]
    lines = [f"teacher {teacher['parameters'] / 1e6:.2f}M params, student {student['parameters'] / 1e6:.2f}M params"]
    if "training_rows" in summary:
        rows = summary["training_rows"]
        lines.append(f"trained on {rows['labelled']:,} labelled and {rows['unlabeled']:,} unlabeled rows")
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
