"""`LabelledShareSampler`: training batches that each hold a fixed number of labelled rows, when the labelled rows
are a small share of a training set with transfer (unlabeled) rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from transformers.utils import logging

from .unlabeled import labelled_rows, row_labels

logger = logging.get_logger(__name__)


class LabelledShareSampler(torch.utils.data.Sampler[int]):
    """Indices in blocks of `batch_size`, each block holding `labelled_per_batch` labelled rows and the rest
    unlabeled ones, shuffled within the block.

    An epoch covers every unlabeled row once (the last block topped up from the next permutation); the labelled
    rows are drawn from reshuffled permutations of their own, as often as the blocks need them. The order depends
    on `seed` and the epoch alone (`set_epoch`), so a resumed run sees the batches the interrupted one would have.

    Args:
        labelled: which rows carry a label (a boolean per row).
        batch_size: rows per batch on one process (each process reads whole blocks).
        labelled_per_batch: labelled rows in every batch, 1 <= labelled_per_batch < batch_size.
        seed: seed of the permutations.
    """

    def __init__(self, labelled: np.ndarray, batch_size: int, labelled_per_batch: int, seed: int) -> None:
        labelled = np.asarray(labelled, dtype=bool)
        self.labelled_rows = np.flatnonzero(labelled)
        self.unlabeled_rows = np.flatnonzero(~labelled)
        if not 1 <= labelled_per_batch < batch_size:
            raise ValueError(
                f"A batch of {batch_size} rows cannot hold {labelled_per_batch} labelled rows and unlabeled ones: "
                "choose `labelled_batch_share` so that 1 <= share * batch size < batch size."
            )
        if not len(self.labelled_rows) or not len(self.unlabeled_rows):
            raise ValueError("`LabelledShareSampler` needs both labelled and unlabeled rows.")
        self.batch_size = batch_size
        self.labelled_per_batch = labelled_per_batch
        self.seed = seed
        self.epoch = 0
        self.num_batches = -(-len(self.unlabeled_rows) // (batch_size - labelled_per_batch))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def __iter__(self) -> Iterator[int]:
        generator = np.random.default_rng([self.seed, self.epoch])
        unlabeled_per_batch = self.batch_size - self.labelled_per_batch
        labelled = _cycled_permutations(self.labelled_rows, self.num_batches * self.labelled_per_batch, generator)
        unlabeled = _cycled_permutations(self.unlabeled_rows, self.num_batches * unlabeled_per_batch, generator)
        for batch in range(self.num_batches):
            block = np.concatenate(
                [
                    labelled[batch * self.labelled_per_batch : (batch + 1) * self.labelled_per_batch],
                    unlabeled[batch * unlabeled_per_batch : (batch + 1) * unlabeled_per_batch],
                ]
            )
            yield from (int(row) for row in generator.permutation(block))


def _cycled_permutations(rows: np.ndarray, count: int, generator: np.random.Generator) -> np.ndarray:
    """`count` rows from back-to-back permutations of `rows` (each row once per permutation)."""
    repeats = -(-count // len(rows))
    return np.concatenate([generator.permutation(rows) for _ in range(repeats)])[:count]


def labelled_share_sampler(
    dataset: Any, training_rows: tuple[int, int] | None, config: Any, task: str
) -> LabelledShareSampler | None:
    """The sampler that `config.labelled_batch_share` asks for: None when it is 0 or the training set does not mix
    labelled and unlabeled rows (`training_rows`: their counts), else a [`LabelledShareSampler`] over the per-device
    batch of `config` (at least one labelled and one unlabeled row per batch)."""
    share = config.labelled_batch_share
    if share == 0 or training_rows is None or 0 in training_rows:
        return None
    if config.train_sampling_strategy != "random":
        logger.warning(
            f"`labelled_batch_share={share}` composes each batch itself: `train_sampling_strategy="
            f"'{config.train_sampling_strategy}'` is not applied."
        )
    batch_size = config.train_batch_size
    return LabelledShareSampler(
        labelled_rows(row_labels(dataset), task),
        batch_size,
        min(batch_size - 1, max(1, round(share * batch_size))),
        config.data_seed if config.data_seed is not None else config.seed,
    )
