"""Training rows without a label (transfer data): how such a row is marked, which rows of a batch carry a label, the
task loss over those rows alone, the classes recorded for label-aware negatives, and a transfer set joined to the
labelled training set.

A row is unlabeled when its label is negative (single-label classification: -1, as in GLUE's test splits, or -100,
PyTorch's `ignore_index`) or NaN (regression, where -1 is a real target, and multi-label classification; the trainer
accepts a NaN target only in rows appended from a transfer set, since a missing target among the training rows is
ambiguous). KD and the representation terms read every row; the task loss reads the labelled rows only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .teacher_inputs import LABEL_COLUMNS

UNLABELED = -1
NEGATIVE_LABEL_POLICIES = ("teacher", "none")


def problem_type(model: Any) -> str:
    """The student's task, as transformers' heads name it: 'regression' (one output or `problem_type='regression'`),
    'multi_label_classification' or 'single_label_classification'."""
    config = getattr(model, "config", None)
    kind = getattr(config, "problem_type", None)
    if kind == "regression" or getattr(config, "num_labels", 0) == 1:
        return "regression"
    return kind if kind == "multi_label_classification" else "single_label_classification"


def labelled_mask(labels: torch.Tensor, task: str) -> torch.Tensor:
    """Which rows of a batch carry a label: finite targets (regression, multi-label) or a class id >= 0."""
    rows = labels.view(labels.shape[0], -1)
    if task != "single_label_classification":
        return torch.isfinite(rows.float()).all(dim=1)
    if labels.is_floating_point():
        raise ValueError(
            "A classification batch holds float labels: class ids must be integers (mark a row without a label "
            f"with {UNLABELED})."
        )
    return rows.min(dim=1).values >= 0


def labelled_task_loss(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, task: str
) -> torch.Tensor | None:
    r"""The student's task loss over the labelled rows L of a batch, in fp32; None when the batch has none:

        CE  = -1/|L| sum_{i in L} log softmax(z_i)_{y_i}                  (single-label classification)
        MSE = 1/|L| sum_{i in L} (z_i - y_i)^2                            (regression)
        BCE = -1/(|L| C) sum_{i in L} sum_c [y_ic log s(z_ic) + (1 - y_ic) log(1 - s(z_ic))]   (multi-label)

    the losses transformers' classification heads compute, restricted to L.
    """
    if not bool(mask.any()):
        return None
    logits, labels = logits[mask].float(), labels[mask]
    if task == "regression":
        return F.mse_loss(logits.view(-1), labels.float().view(-1))
    if task == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.float().view_as(logits))
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1).long())


def labels_for_negatives(
    labels: torch.Tensor, mask: torch.Tensor, teacher_logits: torch.Tensor | None, policy: str
) -> torch.Tensor:
    """The class each row is recorded under for label-aware negatives: its label; for an unlabeled row the teacher's
    predicted class (`policy='teacher'`) or -1, which no class rule touches (`policy='none'`)."""
    labels = labels.view(labels.shape[0], -1)[:, 0].long()
    if bool(mask.all()):
        return labels
    if policy == "teacher" and teacher_logits is not None:
        fill = teacher_logits.argmax(dim=-1).to(labels.device)
    else:
        fill = torch.full_like(labels, UNLABELED)
    return torch.where(mask.to(labels.device), labels, fill)


def label_column(dataset: Any) -> str | None:
    """The dataset's label column (`label`, `labels` or `label_ids`), or None."""
    columns = getattr(dataset, "column_names", None) or []
    return next((name for name in LABEL_COLUMNS if name in columns), None)


def row_labels(dataset: Any) -> np.ndarray | None:
    """The label of every row as an array (None where the dataset has no readable label column)."""
    column = label_column(dataset)
    if column is None or not hasattr(dataset, "with_format"):
        return None
    values = dataset.with_format(None)[column]
    if any(value is None for value in values):
        raise ValueError(
            f"The training set's {column!r} column holds missing values (None): mark a row without a label with "
            f"{UNLABELED} (classification) or NaN (regression), or drop it (`dataset.filter`)."
        )
    return np.asarray(values)


def labelled_rows(labels: np.ndarray, task: str) -> np.ndarray:
    """Boolean array: which rows carry a label (see [`labelled_mask`])."""
    if len(labels) == 0:
        return np.zeros(0, dtype=bool)
    rows = labels.reshape(len(labels), -1)
    if task != "single_label_classification":
        return np.isfinite(rows.astype(np.float64)).all(axis=1)
    if np.issubdtype(labels.dtype, np.floating):
        raise ValueError(
            "The training labels are floats but the student is a classifier: class ids must be integers (mark a row "
            f"without a label with {UNLABELED}); for a regression task give the student one output "
            "(`num_labels=1`, `problem_type='regression'`)."
        )
    return rows.min(axis=1) >= 0


def count_rows(dataset: Any, task: str) -> tuple[int, int] | None:
    """(labelled rows, unlabeled rows) of a training set (every row unlabeled when it has no label column); None
    where they cannot be told (a dataset without a length, or labels that cannot be read as a column)."""
    if dataset is None or not hasattr(dataset, "__len__"):
        return None
    if label_column(dataset) is None:
        return (0, len(dataset)) if hasattr(dataset, "column_names") else None
    labels = row_labels(dataset)
    if labels is None:
        return None
    labelled = int(labelled_rows(labels, task).sum())
    return labelled, len(labels) - labelled


def check_training_rows(dataset: Any, config: Any, task: str) -> tuple[int, int] | None:
    """Count a training set's labelled and unlabeled rows, and refuse a task loss with no labelled row to read."""
    rows = count_rows(dataset, task)
    if rows is not None and rows[0] == 0 and rows[1] > 0 and config.alpha_ce > 0:
        raise ValueError(
            f"None of the {rows[1]:,} training rows has a label, but `alpha_ce={config.alpha_ce}` asks for the task "
            "loss: set `alpha_ce=0` to distil on the teacher's outputs alone, or add labelled rows."
        )
    return rows


def add_transfer_rows(
    train_dataset: Any, transfer_dataset: Any, index_column: str = "idx", task: str = "single_label_classification"
) -> Any:
    """The labelled training set followed by the rows of `transfer_dataset`, marked unlabeled (-1 for single-label
    classification, else NaN), with `index_column` renumbered 0..N-1 over both (one memory-bank and teacher-cache
    slot per row).

    The transfer rows must have every column the training rows have (the model inputs, already tokenized or
    preprocessed the same way); other columns are dropped. A label column in the transfer set is accepted only when
    it marks every row unlabeled.
    """
    import datasets

    if not isinstance(train_dataset, datasets.Dataset) or not isinstance(transfer_dataset, datasets.Dataset):
        raise TypeError(
            "`transfer_dataset` is joined to `train_dataset`: both must be `datasets.Dataset`s (for other datasets, "
            "concatenate them yourself with the transfer rows' labels set to -1)."
        )
    label = label_column(train_dataset)
    if label is None:
        raise ValueError(
            f"`train_dataset` has no label column ({', '.join(LABEL_COLUMNS)}): with no labelled rows there is "
            "nothing to add a transfer set to; train on the transfer rows alone with `alpha_ce=0`."
        )
    transfer_label = label_column(transfer_dataset)
    if transfer_label is not None:
        transfer_labels = row_labels(transfer_dataset)
        if labelled_rows(transfer_labels, task).any():
            raise ValueError(
                f"`transfer_dataset` has a {transfer_label!r} column with labels: transfer rows are trained on "
                "without labels. Remove the column (`transfer_dataset.remove_columns`), or add the labelled rows to "
                "`train_dataset`."
            )
        transfer_dataset = transfer_dataset.remove_columns(transfer_label)
    needed = [name for name in train_dataset.column_names if name not in (label, index_column)]
    missing = [name for name in needed if name not in transfer_dataset.column_names]
    if missing:
        raise ValueError(
            f"`transfer_dataset` lacks the column(s) {missing} that the training rows have (it has "
            f"{transfer_dataset.column_names}): preprocess the transfer rows as the training rows (the same "
            "tokenizer and text columns, or the same image transform)."
        )
    marker = UNLABELED if task == "single_label_classification" else math.nan
    shape = np.asarray(train_dataset.with_format(None)[0][label]).shape
    transfer = transfer_dataset.select_columns(needed).add_column(
        label, [np.full(shape, marker).tolist() if shape else marker] * len(transfer_dataset)
    )
    features = {name: train_dataset.features[name] for name in (*needed, label)}
    transfer = transfer.cast(datasets.Features(features))
    train = train_dataset.remove_columns(index_column) if index_column in train_dataset.column_names else train_dataset
    joined = datasets.concatenate_datasets([train.select_columns([*needed, label]), transfer])
    joined = joined.add_column(index_column, list(range(len(joined))))
    return _with_format_of(joined, train_dataset, index_column)


def _with_format_of(dataset: Any, model: Any, index_column: str) -> Any:
    """`dataset` read as `model` is (its format type, the columns it returns, the index column included, and its
    on-the-fly transform)."""
    form = model.format
    columns = form["columns"]
    if columns is not None:
        columns = None if set(columns) >= set(model.column_names) else [*columns, index_column]
    if form["type"] == "custom":
        dataset.set_transform(
            form["format_kwargs"]["transform"], columns=columns, output_all_columns=form["output_all_columns"]
        )
        return dataset
    return dataset.with_format(
        form["type"], columns=columns, output_all_columns=form["output_all_columns"], **form["format_kwargs"]
    )
