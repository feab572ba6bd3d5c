"""Unlabeled sentences for embedding distillation: from a text/csv/json file, a data set's text column (a Hub id or
a local folder), or the GLUE copies' training splits; and the evaluation data (STS pairs, a labelled probe set)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import datasets

from ..teacher_inputs import tokenize_for_teacher
from .embedding_eval import read_jsonl

# The text columns of the GLUE tasks whose sentences can serve as unlabeled training text.
GLUE_TEXT_COLUMNS = {"sst2": ("sentence",), "rte": ("sentence1", "sentence2"), "stsb": ("sentence1", "sentence2")}


@dataclass
class SentenceDataArguments:
    """Where the unlabeled training sentences and the evaluation data come from."""

    train_file: str | None = field(
        default=None,
        metadata={"help": "Sentences to train on: a .txt file (one per line) or a csv/json(l) file (--text_column)."},
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "A data set (Hub id or local folder) whose --text_column holds sentences."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Config of --dataset_name."})
    dataset_split: str = field(default="train", metadata={"help": "Split of --dataset_name to read."})
    text_column: str = field(default="sentence", metadata={"help": "Column holding the sentences."})
    glue_dir: str | None = field(
        default=None,
        metadata={"help": "An offline GLUE copy (<task>/train.jsonl): train on the sentences of --glue_tasks."},
    )
    glue_tasks: str = field(
        default="sst2,rte", metadata={"help": f"Comma-separated tasks among {', '.join(GLUE_TEXT_COLUMNS)}."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on the first N distinct sentences (after shuffling with the seed)."}
    )
    max_seq_length: int = field(default=128, metadata={"help": "Longest tokenized sentence; longer ones are cut."})
    sts_file: str | None = field(
        default=None,
        metadata={
            "help": (
                "STS pairs to evaluate on (json lines with sentence1, sentence2, label 0-5); default: "
                "<glue_dir>/stsb/validation.jsonl. Their sentences are never trained on."
            )
        },
    )
    probe_dir: str | None = field(
        default=None,
        metadata={
            "help": (
                "A labelled classification folder (train.jsonl, validation.jsonl with sentence, label) for the "
                "frozen-embedding linear probe; default: <glue_dir>/sst2. Its validation sentences are never "
                "trained on."
            )
        },
    )
    probe_train_samples: int = field(default=2000, metadata={"help": "Training rows of the linear probe."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on the first N pairs/rows."})

    def __post_init__(self) -> None:
        sources = [name for name in ("train_file", "dataset_name", "glue_dir") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError(
                "Give exactly one source of training sentences: --train_file, --dataset_name or --glue_dir; got "
                f"{sources or 'none'}."
            )
        unknown = [task for task in self.task_list if task not in GLUE_TEXT_COLUMNS]
        if unknown:
            raise ValueError(f"--glue_tasks {unknown} unknown: choose among {', '.join(GLUE_TEXT_COLUMNS)}.")
        if self.glue_dir:
            self.sts_file = self.sts_file or os.path.join(self.glue_dir, "stsb", "validation.jsonl")
            self.probe_dir = self.probe_dir or os.path.join(self.glue_dir, "sst2")

    @property
    def task_list(self) -> list[str]:
        return [task.strip() for task in self.glue_tasks.split(",") if task.strip()]


def _column(rows: datasets.Dataset, column: str, source: str) -> list[str]:
    if column not in rows.column_names:
        raise ValueError(f"{source} has no {column!r} column (it has {rows.column_names}): set --text_column.")
    return [text for text in rows[column] if isinstance(text, str) and text.strip()]


def load_training_sentences(args: SentenceDataArguments, cache_dir: str | None = None) -> list[str]:
    """Every sentence of the chosen source, in the source's order."""
    if args.train_file:
        if args.train_file.endswith(".txt"):
            with open(args.train_file, encoding="utf-8") as handle:
                return [line.strip() for line in handle if line.strip()]
        loader = "csv" if args.train_file.endswith(".csv") else "json"
        rows = datasets.load_dataset(loader, data_files={"train": args.train_file}, cache_dir=cache_dir)["train"]
        return _column(rows, args.text_column, args.train_file)
    if args.dataset_name:
        rows = datasets.load_dataset(
            args.dataset_name, args.dataset_config_name, split=args.dataset_split, cache_dir=cache_dir
        )
        return _column(rows, args.text_column, args.dataset_name)
    sentences = []
    for task in args.task_list:
        path = os.path.join(args.glue_dir, task, "train.jsonl")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--glue_dir has no {task}/train.jsonl ({path}).")
        for row in read_jsonl(path):
            sentences += [row[column] for column in GLUE_TEXT_COLUMNS[task]]
    return sentences


def distinct_training_sentences(sentences: list[str], held_out: set[str], seed: int, limit: int | None) -> list[str]:
    """The distinct sentences that are not `held_out` (evaluation text), shuffled with `seed`, cut to `limit`."""
    kept = list(dict.fromkeys(sentence for sentence in sentences if sentence not in held_out))
    order = datasets.Dataset.from_dict({"sentence": kept}).shuffle(seed=seed)["sentence"]
    return order if limit is None else order[:limit]


@dataclass
class EvaluationData:
    """STS pairs (two sentence lists and gold scores) and a labelled probe set (train and test sentences)."""

    sts_first: list[str]
    sts_second: list[str]
    sts_gold: list[float]
    probe_train: list[str]
    probe_train_labels: list[int]
    probe_test: list[str]
    probe_test_labels: list[int]

    @property
    def held_out_sentences(self) -> set[str]:
        """The sentences that training must not see."""
        return {*self.sts_first, *self.sts_second, *self.probe_test}


def load_evaluation_data(args: SentenceDataArguments) -> EvaluationData | None:
    """The STS pairs and the probe's rows; None when neither is configured."""
    if not args.sts_file or not args.probe_dir:
        return None
    pairs = read_jsonl(args.sts_file)[: args.max_eval_samples]
    train = read_jsonl(os.path.join(args.probe_dir, "train.jsonl"))[: args.probe_train_samples]
    test = read_jsonl(os.path.join(args.probe_dir, "validation.jsonl"))[: args.max_eval_samples]
    return EvaluationData(
        [row["sentence1"] for row in pairs],
        [row["sentence2"] for row in pairs],
        [float(row["label"]) for row in pairs],
        [row["sentence"] for row in train],
        [int(row["label"]) for row in train],
        [row["sentence"] for row in test],
        [int(row["label"]) for row in test],
    )


def tokenize_sentences(
    sentences: list[str], tokenizer: Any, teacher_tokenizer: Any | None, max_length: int, index_column: str = "idx"
) -> datasets.Dataset:
    """The sentences tokenized for the student and, with a `teacher_tokenizer` (a teacher with its own vocabulary),
    for the teacher in `teacher_*` columns, with the index column 0..N-1 in the given order."""
    rows = datasets.Dataset.from_dict({"sentence": sentences, index_column: list(range(len(sentences)))})

    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = dict(tokenizer(batch["sentence"], truncation=True, max_length=max_length))
        if teacher_tokenizer is not None:
            encoded.update(tokenize_for_teacher(teacher_tokenizer, [batch["sentence"]], max_length=max_length))
        return encoded

    return rows.map(encode, batched=True, remove_columns=["sentence"], desc="Tokenizing the sentences")
