"""Unlabeled transfer data for the example scripts: text rows from a csv/json file or a data set's split (a Hub id or
a local folder), and images from a folder, loaded, cut and preprocessed as the training rows are, for
`WCoRDTrainer(transfer_dataset=...)`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import datasets
from transformers import PreTrainedTokenizerBase
from transformers.utils import logging

from .glue import DATA_FILE_EXTENSIONS, GlueDataArguments, GlueTask, encode_texts, first_rows

logger = logging.get_logger(__name__)

_LOADERS = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}


@dataclass
class TransferDataArguments:
    """Unlabeled rows to distil on besides the labelled training set (one source at most); only the task's text
    columns are read, so a labelled data set can serve as unlabeled text too."""

    transfer_file: str | None = field(
        default=None, metadata={"help": "A csv or json(l) file of unlabeled rows with the task's text column(s)."}
    )
    transfer_dataset_name: str | None = field(
        default=None,
        metadata={
            "help": (
                "A data set of unlabeled rows: a Hub id (e.g. 'nyu-mll/glue' with --transfer_dataset_config_name "
                "sst2 --transfer_split test, whose labels are hidden) or a local folder of data files."
            )
        },
    )
    transfer_dataset_config_name: str | None = field(
        default=None, metadata={"help": "Config of --transfer_dataset_name."}
    )
    transfer_split: str = field(default="train", metadata={"help": "Split of --transfer_dataset_name to read."})
    max_transfer_samples: int | None = field(
        default=None, metadata={"help": "Use the first N transfer rows (after shuffling with the seed)."}
    )

    def __post_init__(self) -> None:
        if self.transfer_file and self.transfer_dataset_name:
            raise ValueError("Give one transfer source: --transfer_file or --transfer_dataset_name, not both.")
        if self.transfer_file is not None:
            extension = self.transfer_file.rsplit(".", 1)[-1].lower()
            if extension not in DATA_FILE_EXTENSIONS:
                raise ValueError(
                    f"--transfer_file {self.transfer_file!r} must be a {', '.join(DATA_FILE_EXTENSIONS)} file."
                )

    @property
    def given(self) -> bool:
        return bool(self.transfer_file or self.transfer_dataset_name)


def load_transfer_text(
    transfer_args: TransferDataArguments,
    task: GlueTask,
    seed: int,
    cache_dir: str | None = None,
    token: str | None = None,
) -> datasets.Dataset | None:
    """The raw transfer rows (the task's text columns only), shuffled with `seed` and cut to
    `max_transfer_samples`; None without a transfer source."""
    if not transfer_args.given:
        return None
    if transfer_args.transfer_file is not None:
        loader = _LOADERS[transfer_args.transfer_file.rsplit(".", 1)[-1].lower()]
        rows = datasets.load_dataset(loader, data_files={"train": transfer_args.transfer_file}, cache_dir=cache_dir)
        rows, source = rows["train"], transfer_args.transfer_file
    else:
        rows = datasets.load_dataset(
            transfer_args.transfer_dataset_name,
            transfer_args.transfer_dataset_config_name,
            split=transfer_args.transfer_split,
            cache_dir=cache_dir,
            token=token,
        )
        source = f"{transfer_args.transfer_dataset_name} ({transfer_args.transfer_split})"
    missing = [column for column in task.text_columns if column not in rows.column_names]
    if missing:
        raise ValueError(
            f"The transfer data {source} lack the text column(s) {missing} that {task.name} reads; they have "
            f"{rows.column_names}. Rename them (the training rows' text columns are {list(task.text_columns)})."
        )
    rows = first_rows(
        rows.select_columns(list(task.text_columns)).shuffle(seed=seed), transfer_args.max_transfer_samples
    )
    if len(rows) == 0:
        raise ValueError(f"The transfer data {source} hold no rows: check the source or --max_transfer_samples.")
    return rows


def shared_text_rows(transfer: datasets.Dataset, evaluation: datasets.Dataset, task: GlueTask) -> int:
    """How many transfer rows repeat an evaluation row's text (which would leak the evaluation data)."""

    def key(row: dict[str, str]) -> tuple[str, ...]:
        return tuple(row[column] for column in task.text_columns)

    evaluated = {key(row) for row in evaluation.select_columns(list(task.text_columns))}
    return sum(key(row) in evaluated for row in transfer)


def tokenize_transfer_text(
    rows: datasets.Dataset,
    task: GlueTask,
    tokenizer: PreTrainedTokenizerBase,
    data_args: GlueDataArguments,
    teacher_tokenizer: PreTrainedTokenizerBase | None = None,
) -> datasets.Dataset:
    """Transfer rows tokenized as the training rows are (the student's and, when it has its own, the teacher's
    tokenization), without a label."""
    return rows.map(
        lambda batch: encode_texts(batch, task, tokenizer, data_args, teacher_tokenizer),
        batched=True,
        num_proc=data_args.preprocessing_num_workers,
        load_from_cache_file=not data_args.overwrite_cache,
        remove_columns=rows.column_names,
        desc="Tokenizing the transfer rows",
    )


def load_transfer_images(
    transfer_dir: str, seed: int, limit: int | None, cache_dir: str | None = None
) -> datasets.Dataset:
    """The images of a folder (sub-folders included; no labels are read) as an `image` column, shuffled with `seed`
    and cut to `limit`."""
    if not os.path.isdir(transfer_dir):
        raise FileNotFoundError(f"--transfer_dir {transfer_dir!r} is not a folder.")
    rows = datasets.load_dataset(
        "imagefolder", data_files={"train": f"{transfer_dir}/**"}, drop_labels=True, cache_dir=cache_dir
    )["train"]
    if len(rows) == 0:
        raise ValueError(f"--transfer_dir {transfer_dir!r} holds no images.")
    return first_rows(rows.select_columns(["image"]).shuffle(seed=seed), limit)
