"""A teacher with its own tokenizer: each example carries the student's inputs and, under a `teacher_` prefix, the
teacher's tokenization of the same text (`teacher_input_ids`, `teacher_attention_mask`, ...).

Logit KD and both WCoRD terms compare one vector per example (sequence-level logits and pooled features), so the
two token sequences never need to line up: each model reads its own, and mean pooling uses each model's own
attention mask. A batch without `teacher_` inputs gives the teacher the student's inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

TEACHER_PREFIX = "teacher_"
TEACHER_COLUMNS = tuple(f"{TEACHER_PREFIX}{name}" for name in ("input_ids", "attention_mask", "token_type_ids"))
LABEL_COLUMNS = ("label", "labels", "label_ids")


def has_teacher_inputs(columns: Sequence[str] | Mapping[str, Any] | None) -> bool:
    """Whether a dataset's columns (or a batch's keys) carry the teacher's own tokenization."""
    return columns is not None and f"{TEACHER_PREFIX}input_ids" in columns


def student_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The batch without the teacher's inputs: what the student's forward pass reads (labels included)."""
    return {name: value for name, value in inputs.items() if not name.startswith(TEACHER_PREFIX)}


def teacher_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What the teacher's forward pass reads: its own `teacher_*` inputs, unprefixed, when the batch carries them,
    else the student's inputs; never the labels."""
    if has_teacher_inputs(inputs):
        return {
            name.removeprefix(TEACHER_PREFIX): value
            for name, value in inputs.items()
            if name.startswith(TEACHER_PREFIX)
        }
    return {name: value for name, value in student_inputs(inputs).items() if name not in LABEL_COLUMNS}


def tokenize_for_teacher(
    teacher_tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[Sequence[str]],
    max_length: int | None = None,
    padding: bool | str = False,
) -> dict[str, list]:
    """The teacher's tokenization of a batch of one or two text columns, as `teacher_*` columns, truncated to
    `max_length` (default: the teacher's own limit); unpadded unless `padding` says otherwise (the collator pads)."""
    encoded = teacher_tokenizer(*texts, truncation=True, max_length=max_length, padding=padding)
    return {f"{TEACHER_PREFIX}{name}": values for name, values in encoded.items()}


def as_teacher_dataset(dataset: Any) -> Any:
    """A `datasets.Dataset` whose model inputs are the teacher's (the student's token columns dropped, the
    `teacher_*` ones renamed), to evaluate the teacher on the same examples with a plain collator."""
    if not has_teacher_inputs(dataset.column_names):
        return dataset
    student_columns = [name.removeprefix(TEACHER_PREFIX) for name in TEACHER_COLUMNS]
    renamed = {name: name.removeprefix(TEACHER_PREFIX) for name in dataset.column_names if name in TEACHER_COLUMNS}
    dropped = [name for name in dataset.column_names if name in student_columns]
    return dataset.remove_columns(dropped).rename_columns(renamed)


class DistillationDataCollator:
    """Pads the student's inputs with the student's tokenizer and the `teacher_*` inputs with the teacher's, so that
    each model gets its own padding token and attention mask; every other column is collated as usual.

    Args:
        tokenizer: the student's tokenizer.
        teacher_tokenizer: the teacher's tokenizer.
        pad_to_multiple_of: passed to both paddings (e.g. 8 for tensor cores).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        teacher_tokenizer: PreTrainedTokenizerBase,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        self.student = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
        self.teacher = DataCollatorWithPadding(teacher_tokenizer, pad_to_multiple_of=pad_to_multiple_of)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.student([student_inputs(feature) for feature in features])
        if has_teacher_inputs(features[0]):
            teacher_batch = self.teacher([teacher_inputs(feature) for feature in features])
            batch.update({f"{TEACHER_PREFIX}{name}": value for name, value in teacher_batch.items()})
        return batch
