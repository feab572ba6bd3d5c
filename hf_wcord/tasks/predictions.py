"""Predictions on unlabelled test splits, written in GLUE's submission format (as `run_glue.py --do_predict`)."""

from __future__ import annotations

import os

import datasets
import numpy as np
from transformers import Trainer

from .glue import GlueTask


def require_test_splits(test_splits: dict[str, tuple[datasets.Dataset, list[int]]], task: GlueTask) -> None:
    """`--do_predict` with nothing to predict is an error, not a silent no-op."""
    if not test_splits:
        raise ValueError(
            f"--do_predict found no test split to predict (looked for {list(task.test_splits)}): give --test_file "
            "with --train_file, put test.jsonl (MNLI: test_matched.jsonl, test_mismatched.jsonl) next to the other "
            "splits in --dataset_dir, or use the Hub dataset, whose GLUE configs have test splits."
        )


def prediction_file_name(task: GlueTask, split: str) -> str:
    """`predict_results_<task>.txt`, and `predict_results_mnli-mm.txt` for MNLI's mismatched test split."""
    return f"predict_results_{task.name}{'-mm' if split.endswith('mismatched') else ''}.txt"


def write_predictions(path: str, logits: np.ndarray, indices: list[int], task: GlueTask) -> None:
    """A header `index<TAB>prediction`, then one row per example: its index and the predicted label name (the
    score with three decimals for a regression task). Written to a temporary file first, so that an interrupted
    write leaves nothing half-written behind."""
    logits = np.asarray(logits)
    if len(logits) != len(indices):
        raise ValueError(f"{len(logits)} predictions for {len(indices)} examples.")
    if task.is_regression:
        rows = [f"{score:.3f}" for score in logits.reshape(-1)]
    else:
        rows = [task.label_names[label] for label in logits.argmax(axis=-1)]
    with open(f"{path}.partial", "w", encoding="utf-8") as handle:
        handle.write("index\tprediction\n")
        handle.writelines(f"{index}\t{row}\n" for index, row in zip(indices, rows, strict=True))
    os.replace(f"{path}.partial", path)


def predict_test_splits(
    trainer: Trainer, test_splits: dict[str, tuple[datasets.Dataset, list[int]]], task: GlueTask
) -> list[str]:
    """Predict every test split with `trainer.model` and write the submission files into `output_dir` (on the main
    process); returns their paths."""
    paths = []
    for split, (dataset, indices) in test_splits.items():
        output = trainer.predict(dataset, metric_key_prefix="predict")
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        path = os.path.join(trainer.args.output_dir, prediction_file_name(task, split))
        if trainer.is_world_process_zero():
            os.makedirs(trainer.args.output_dir, exist_ok=True)
            write_predictions(path, logits, indices, task)
        paths.append(path)
    return paths
