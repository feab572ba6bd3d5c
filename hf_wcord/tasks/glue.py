"""The nine GLUE tasks: their input columns, label spaces, evaluation splits and official metrics, and loading them
from the Hub (`nyu-mll/glue`), from csv/json files, or from an offline copy in the Hub's column layout."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import datasets
import numpy as np
from transformers import EvalPrediction, PreTrainedTokenizerBase
from transformers.utils import logging

from ..teacher_inputs import tokenize_for_teacher
from . import metrics

logger = logging.get_logger(__name__)

HUB_DATASET = "nyu-mll/glue"
DATA_FILE_EXTENSIONS = ("jsonl", "json", "csv", "parquet")
_LOADER_OF_EXTENSION = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}


@dataclass(frozen=True)
class GlueTask:
    """What a GLUE task reads, predicts and is scored with.

    Attributes:
        name: the task (the Hub config name, e.g. `"mnli"`).
        text_columns: the one or two input text columns.
        label_names: class names in label-id order; None for a regression task (STS-B).
        eval_splits: the splits evaluated and reported (MNLI has a matched and a mismatched one).
        metric_names: the official metrics, first is the main one.
    """

    name: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None
    eval_splits: tuple[str, ...] = ("validation",)
    metric_names: tuple[str, ...] = ("accuracy",)

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def test_splits(self) -> tuple[str, ...]:
        """The unlabelled splits predicted for a submission: `test`, or MNLI's `test_matched`/`test_mismatched`."""
        return tuple(split.replace("validation", "test") for split in self.eval_splits)

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names or ())}

    def compute_metrics(self, predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
        """The task's metrics from model outputs (logits, or scores for regression) and reference labels."""
        predictions = np.asarray(predictions)
        predictions = predictions.reshape(-1) if self.is_regression else predictions.argmax(axis=-1)
        references = np.asarray(references).reshape(-1)
        functions: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
            "accuracy": metrics.accuracy,
            "f1": metrics.binary_f1,
            "matthews_correlation": metrics.matthews_correlation,
            "pearson": metrics.pearson_correlation,
            "spearmanr": metrics.spearman_correlation,
        }
        results = {name: functions[name](predictions, references) for name in self.metric_names}
        if len(results) > 1:
            results["combined_score"] = float(np.mean(list(results.values())))
        return results

    def metrics_function(self) -> Callable[[EvalPrediction], dict[str, float]]:
        """A `compute_metrics` callable for the Trainer."""

        def compute(prediction: EvalPrediction) -> dict[str, float]:
            logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
            return self.compute_metrics(logits, prediction.label_ids)

        return compute


_NLI = ("entailment", "not_entailment")
GLUE_TASKS: dict[str, GlueTask] = {
    "cola": GlueTask("cola", ("sentence",), ("unacceptable", "acceptable"), metric_names=("matthews_correlation",)),
    "sst2": GlueTask("sst2", ("sentence",), ("negative", "positive")),
    "mrpc": GlueTask(
        "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), metric_names=("accuracy", "f1")
    ),
    "qqp": GlueTask(
        "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), metric_names=("accuracy", "f1")
    ),
    "stsb": GlueTask("stsb", ("sentence1", "sentence2"), None, metric_names=("pearson", "spearmanr")),
    "mnli": GlueTask(
        "mnli",
        ("premise", "hypothesis"),
        ("entailment", "neutral", "contradiction"),
        eval_splits=("validation_matched", "validation_mismatched"),
    ),
    "qnli": GlueTask("qnli", ("question", "sentence"), _NLI),
    "rte": GlueTask("rte", ("sentence1", "sentence2"), _NLI),
    "wnli": GlueTask("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment")),
}


@dataclass
class GlueDataArguments:
    """Which GLUE task (or csv/json files) to train and evaluate on, where the data comes from, and how it is
    tokenized."""

    task_name: str | None = field(
        default=None,
        metadata={"help": f"The GLUE task: {', '.join(GLUE_TASKS)}. Optional with --train_file (columns inferred)."},
    )
    dataset_name: str = field(
        default=HUB_DATASET, metadata={"help": "Hub dataset holding the GLUE configs (used without files or a dir)."}
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Config of the Hub dataset (default: --task_name)."}
    )
    dataset_dir: str | None = field(
        default=None,
        metadata={
            "help": (
                "Offline copy in the Hub's column layout: a folder holding <task>/train.jsonl and <task>/<eval "
                "split>.jsonl (or .json/.csv/.parquet), or a `save_to_disk` DatasetDict. Used instead of the Hub."
            )
        },
    )
    train_file: str | None = field(default=None, metadata={"help": "A csv or json(l) file with the training data."})
    validation_file: str | None = field(
        default=None, metadata={"help": "A csv or json(l) file with the evaluation data."}
    )
    test_file: str | None = field(
        default=None,
        metadata={"help": "A csv or json(l) file with the data to predict (--do_predict); its labels are ignored."},
    )
    max_seq_length: int = field(default=128, metadata={"help": "Longest tokenized input; longer ones are truncated."})
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every input to max_seq_length instead of padding each batch to its longest input."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on the first N examples (after shuffling with the seed)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on the first N examples."})
    max_predict_samples: int | None = field(
        default=None, metadata={"help": "Predict the first N examples of each test split (--do_predict)."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes used for tokenization."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Re-tokenize instead of using cached datasets."})

    def __post_init__(self) -> None:
        if self.task_name is not None:
            self.task_name = self.task_name.lower()
            if self.task_name not in GLUE_TASKS:
                raise ValueError(f"Unknown GLUE task {self.task_name!r}: choose one of {', '.join(GLUE_TASKS)}.")
        elif self.train_file is None and self.dataset_dir is None:
            raise ValueError("Give --task_name (a GLUE task) or --train_file/--validation_file with your own data.")
        for name in ("train_file", "validation_file", "test_file"):
            path = getattr(self, name)
            if path is not None and _extension(path) not in DATA_FILE_EXTENSIONS:
                raise ValueError(f"--{name} {path!r} must be a {', '.join(DATA_FILE_EXTENSIONS)} file.")
        for name in ("validation_file", "test_file"):
            if getattr(self, name) is not None and self.train_file is None:
                raise ValueError(f"--{name} needs --train_file as well.")


def _extension(path: str) -> str:
    return path.rsplit(".", 1)[-1].lower() if "." in os.path.basename(path) else ""


def _load_files(files: dict[str, str], cache_dir: str | None) -> datasets.DatasetDict:
    loaders = {_LOADER_OF_EXTENSION[_extension(path)] for path in files.values()}
    if len(loaders) > 1:
        raise ValueError(f"The data files {sorted(files.values())} mix formats: use one format for every split.")
    return datasets.load_dataset(loaders.pop(), data_files=files, cache_dir=cache_dir)


def _find_split_file(folder: str, split: str) -> str | None:
    for extension in DATA_FILE_EXTENSIONS:
        path = os.path.join(folder, f"{split}.{extension}")
        if os.path.isfile(path):
            return path
    return None


def _load_dataset_dir(
    dataset_dir: str, task: str | None, splits: tuple[str, ...], test_splits: tuple[str, ...], cache_dir: str | None
) -> datasets.DatasetDict:
    """Train and evaluation split files (required) and test split files (when present) from an offline copy."""
    folder = (
        os.path.join(dataset_dir, task) if task and os.path.isdir(os.path.join(dataset_dir, task)) else dataset_dir
    )
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--dataset_dir {dataset_dir!r} does not exist.")
    if os.path.isfile(os.path.join(folder, "dataset_dict.json")):
        return datasets.load_from_disk(folder)
    files = {split: _find_split_file(folder, split) for split in ("train", *splits)}
    missing = [split for split, path in files.items() if path is None]
    optional = {split: _find_split_file(folder, split) for split in test_splits}
    if missing:
        raise FileNotFoundError(
            f"{folder} has no file for the split(s) {missing}: expected <split>.jsonl (or .json/.csv/.parquet) for "
            f"{['train', *splits]}, with the columns of the Hub's {HUB_DATASET} config."
        )
    return _load_files({**files, **{split: path for split, path in optional.items() if path}}, cache_dir)


def _infer_task(raw: datasets.DatasetDict) -> GlueTask:
    """A task description for user files: text columns as in `run_glue.py`, labels from the training split."""
    train = raw["train"]
    non_label = [name for name in train.column_names if name not in ("label", "idx")]
    if "sentence1" in non_label and "sentence2" in non_label:
        text_columns: tuple[str, ...] = ("sentence1", "sentence2")
    elif "sentence" in non_label:
        text_columns = ("sentence",)
    else:
        text_columns = tuple(non_label[:2])
    if "label" not in train.column_names or not text_columns:
        raise ValueError(
            f"The training file needs a 'label' column and one or two text columns; found {train.column_names}."
        )
    feature = train.features["label"]
    if isinstance(feature, datasets.ClassLabel):
        return GlueTask("custom", text_columns, tuple(feature.names))
    if feature.dtype.startswith("float"):
        return GlueTask("custom", text_columns, None, metric_names=("pearson", "spearmanr"))
    labels = sorted({str(label) for label in train["label"]})
    return GlueTask("custom", text_columns, tuple(labels))


def load_glue(
    data_args: GlueDataArguments, cache_dir: str | None = None, token: str | None = None
) -> tuple[datasets.DatasetDict, GlueTask]:
    """Load the raw train, evaluation and (where there are any) test splits, and describe the task.

    Sources, first match wins: `train_file`/`validation_file`/`test_file`; `dataset_dir` (offline copy, with
    `test.jsonl` etc. when present); the Hub (`dataset_name`, config `dataset_config_name` or `task_name`).
    """
    task = GLUE_TASKS.get(data_args.task_name or "")
    if data_args.train_file is not None:
        files = {"train": data_args.train_file}
        if data_args.validation_file is not None:
            files["validation"] = data_args.validation_file
        if data_args.test_file is not None:
            files["test"] = data_args.test_file
        raw = _load_files(files, cache_dir)
        if task is not None and task.eval_splits != ("validation",):
            task = GlueTask(task.name, task.text_columns, task.label_names, ("validation",), task.metric_names)
    elif data_args.dataset_dir is not None:
        splits = task.eval_splits if task else ("validation",)
        test_splits = task.test_splits if task else ("test",)
        raw = _load_dataset_dir(data_args.dataset_dir, data_args.task_name, splits, test_splits, cache_dir)
    else:
        config = data_args.dataset_config_name or data_args.task_name
        raw = datasets.load_dataset(data_args.dataset_name, config, cache_dir=cache_dir, token=token)
    task = task or _infer_task(raw)
    if "train" not in raw:
        raise ValueError(f"The data has no 'train' split (found {list(raw)}).")
    for split in ("train", *task.eval_splits):
        if split not in raw:
            continue
        missing = [c for c in (*task.text_columns, "label") if c not in raw[split].column_names]
        if missing:
            raise ValueError(
                f"The {split} split lacks the column(s) {missing} that {task.name} reads; it has "
                f"{raw[split].column_names}. Use the column names of the Hub's {HUB_DATASET} config."
            )
    return raw, task


def encoding_settings(tokenizer: PreTrainedTokenizerBase, data_args: GlueDataArguments) -> dict[str, object]:
    """`max_length` (`max_seq_length`, capped at the tokenizer's own limit) and `padding` (to it with
    `pad_to_max_length`, else none: the collator pads) for one tokenizer."""
    return {
        "max_length": min(data_args.max_seq_length, tokenizer.model_max_length),
        "padding": "max_length" if data_args.pad_to_max_length else False,
    }


def first_rows(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    """The first `limit` rows (all of them when `limit` is None or larger)."""
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


def encode_texts(
    batch: dict[str, list],
    task: GlueTask,
    tokenizer: PreTrainedTokenizerBase,
    data_args: GlueDataArguments,
    teacher_tokenizer: PreTrainedTokenizerBase | None = None,
) -> dict[str, list]:
    """A batch of rows' text columns tokenized for the student and, with a `teacher_tokenizer`, for the teacher in
    `teacher_*` columns."""
    texts = [batch[column] for column in task.text_columns]
    encoded = dict(tokenizer(*texts, truncation=True, **encoding_settings(tokenizer, data_args)))
    if teacher_tokenizer is not None:
        encoded.update(
            tokenize_for_teacher(teacher_tokenizer, texts, **encoding_settings(teacher_tokenizer, data_args))
        )
    return encoded


def tokenize_glue(
    raw: datasets.DatasetDict,
    task: GlueTask,
    tokenizer: PreTrainedTokenizerBase,
    data_args: GlueDataArguments,
    seed: int = 42,
    index_column: str = "idx",
    teacher_tokenizer: PreTrainedTokenizerBase | None = None,
) -> tuple[datasets.Dataset, dict[str, datasets.Dataset]]:
    """Tokenize the task's text columns and map string labels to ids.

    Returns the training set (shuffled with `seed` and cut to `max_train_samples` when set, with `index_column`
    renumbered 0..N-1 for the memory bank) and a dict of the evaluation splits that exist. With a
    `teacher_tokenizer` (a teacher whose vocabulary is not the student's), every split also gets the teacher's
    tokenization of the same text in `teacher_*` columns.
    """
    label2id = task.label2id

    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = encode_texts(batch, task, tokenizer, data_args, teacher_tokenizer)
        labels = batch["label"]
        if task.is_regression:
            encoded["label"] = [float(label) for label in labels]
        elif labels and isinstance(labels[0], str):
            unknown = sorted({label for label in labels if label not in label2id})
            if unknown:
                raise ValueError(f"Labels {unknown} are not among the task's labels {list(label2id)}.")
            encoded["label"] = [label2id[label] for label in labels]
        return encoded

    def prepare(dataset: datasets.Dataset, description: str) -> datasets.Dataset:
        drop = [c for c in dataset.column_names if c in task.text_columns or c == index_column]
        return dataset.map(
            encode,
            batched=True,
            num_proc=data_args.preprocessing_num_workers,
            load_from_cache_file=not data_args.overwrite_cache,
            remove_columns=drop,
            desc=f"Tokenizing {description}",
        )

    train = first_rows(raw["train"].shuffle(seed=seed), data_args.max_train_samples)
    if len(train) == 0:
        raise ValueError("The training split is empty: check the data files or --max_train_samples.")
    train = prepare(train, "train").add_column(index_column, list(range(len(train))))
    evaluation = {}
    for split in task.eval_splits:
        if split not in raw:
            continue
        evaluation[split] = prepare(first_rows(raw[split], data_args.max_eval_samples), split)
    return train, evaluation


def tokenize_test_splits(
    raw: datasets.DatasetDict,
    task: GlueTask,
    tokenizer: PreTrainedTokenizerBase,
    data_args: GlueDataArguments,
    index_column: str = "idx",
) -> dict[str, tuple[datasets.Dataset, list[int]]]:
    """The test splits that exist, tokenized without labels (GLUE's test labels are hidden, -1) and cut to
    `max_predict_samples`, each with the example indices its predictions are submitted under (the `index_column`
    when the data have one, else the row numbers)."""
    prepared = {}
    for split in task.test_splits:
        if split not in raw:
            continue
        dataset = first_rows(raw[split], data_args.max_predict_samples)
        missing = [column for column in task.text_columns if column not in dataset.column_names]
        if missing:
            raise ValueError(f"The {split} split lacks the column(s) {missing}; it has {dataset.column_names}.")
        indices = list(dataset[index_column]) if index_column in dataset.column_names else list(range(len(dataset)))
        encoded = dataset.map(
            lambda batch: tokenizer(
                *[batch[column] for column in task.text_columns],
                truncation=True,
                **encoding_settings(tokenizer, data_args),
            ),
            batched=True,
            num_proc=data_args.preprocessing_num_workers,
            load_from_cache_file=not data_args.overwrite_cache,
            remove_columns=dataset.column_names,
            desc=f"Tokenizing {split}",
        )
        prepared[split] = (encoded, [int(index) for index in indices])
    return prepared


def task_head_kwargs(task: GlueTask) -> dict[str, object]:
    """`from_pretrained` / config keyword arguments that give a model the task's label space."""
    if task.is_regression:
        return {"num_labels": 1, "problem_type": "regression"}
    return {
        "num_labels": task.num_labels,
        "id2label": dict(enumerate(task.label_names or ())),
        "label2id": task.label2id,
        "problem_type": "single_label_classification",
    }
