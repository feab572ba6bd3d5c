"""Sizing and warming the negative stores: the memory bank's slot count from the index column, the stores' memory
report, and the no-gradient pass that writes every slot before the first step."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers.utils import logging

from .distiller import WCoRDDistiller

logger = logging.get_logger(__name__)

FeaturesFn = Callable[
    [dict[str, Any], torch.Tensor, torch.Tensor | None],
    tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor | None],
]


def bank_size(dataset: Any, index_column: str) -> int:
    """Number of memory-bank slots: the dataset's length, after checking that its index column holds each of
    0..N-1 exactly once (a bank sized max(idx) + 1 would leave slots that no example writes)."""
    if not hasattr(dataset, "__len__"):
        raise ValueError(
            "The memory bank needs the dataset size, but the training set has no length (streaming?): set "
            "`negatives_source='queue'`."
        )
    size = len(dataset)
    if hasattr(dataset, "with_format") and index_column in getattr(dataset, "column_names", []):
        index = np.asarray(dataset.with_format("numpy")[index_column])
        distinct = np.unique(index).size
        if index.size and (index.min() != 0 or index.max() != size - 1 or distinct != size):
            raise ValueError(
                f"The index column {index_column!r} must hold 0..{size - 1}, each once (one memory-bank slot per "
                f"example), but it holds values {int(index.min())}..{int(index.max())} with "
                f"{distinct} distinct: renumber it after selecting or filtering, e.g. "
                f"`dataset.remove_columns('{index_column}').map(lambda _, i: {{'{index_column}': i}}, "
                "with_indices=True)`."
            )
    return size


def representation_ramp(step: int, max_steps: int, warmup_ratio: float) -> float:
    """Factor on the representation terms' weights: step / (warmup_ratio * max_steps), capped at 1."""
    warmup_steps = math.ceil(warmup_ratio * max_steps)
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


@torch.no_grad()
def warm_negative_stores(
    distiller: WCoRDDistiller,
    batches: Iterable[dict[str, Any]],
    features: FeaturesFn,
    index_column: str,
    disable_progress: bool = False,
) -> None:
    """Write the embeddings of every training example into the memory banks (first write: no momentum), so that no
    random slot is ever drawn as a negative. `features(inputs, index, labels)` returns the pooled teacher and student
    features of a batch (its model inputs, dataset indices and labels) and the classes its rows are recorded under
    for label-aware negatives; the heads' standardisers see the batches as in training."""
    was_training = distiller.training
    distiller.train()
    for batch in tqdm(batches, desc="Filling the WCoRD memory bank", disable=disable_progress):
        labels = batch.get("labels")
        index = batch[index_column]
        inputs = {name: value for name, value in batch.items() if name not in ("labels", index_column)}
        teacher_features, student_features, labels = features(inputs, index, labels)
        distiller.fill(teacher_features, student_features, index, labels)
    distiller.train(was_training)


STORE_WARNING_BYTES = 1 << 30


def report_store_size(distiller: WCoRDDistiller) -> None:
    """Log the negative stores' size, with a warning and the ways to shrink them above 1 GiB per process (each
    process holds a copy, and every checkpoint another)."""
    size = distiller.store_bytes
    kind = "memory banks" if distiller.uses_bank else "queues"
    message = f"The WCoRD {kind} hold {size / 2**20:,.1f} MiB per process."
    if size <= STORE_WARNING_BYTES:
        logger.info(message)
        return
    logger.warning(
        f"{message} To shrink them: `bank_dtype='float16'` (half), fewer layer pairs (`layer_map='last'`), a smaller "
        "`feat_dim`, or `negatives_source='queue'` with `num_negatives` entries instead of one slot per example."
    )
