"""Distill a fine-tuned teacher into a smaller student on a GLUE task with WCoRD (KD + Wasserstein contrastive +
in-batch Sinkhorn terms), in the manner of transformers' `run_glue.py`.

    accelerate launch examples/run_glue_distill.py --task_name sst2 \\
        --teacher_name_or_path teachers/sst2 --student_layers 3 \\
        --do_train --do_eval --output_dir students/sst2
    python examples/run_glue_distill.py examples/configs/sst2_distill.yaml --dataset_dir ../shared/data/glue

The student comes from a Hub id or folder (`--student_name_or_path`), a config (`--student_config_name`, random
init), or the teacher itself (`--student_layers 0,4,8,11` or a layer count). Every `WCoRDConfig` field is a flag.
At the end the teacher and student are evaluated side by side, with parameter counts and the inference speed-up,
written to `distillation_summary.json`. `--teacher_cache DIR` computes the teacher's outputs once and reuses them.
`--do_predict` writes the student's predictions on the test split(s) in GLUE's submission format
(`predict_results_<task>.txt`: index, predicted label name).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    default_data_collator,
    set_seed,
)

from hf_wcord import ModelCardInfo, WCoRDConfig, WCoRDTrainer, init_student_from_teacher
from hf_wcord.cli import HubLoadingArguments, evaluate_splits, parse_arguments, setup_logging, train_and_record
from hf_wcord.glue import (
    GlueDataArguments,
    GlueTask,
    load_glue,
    task_head_kwargs,
    tokenize_glue,
    tokenize_test_splits,
)
from hf_wcord.predictions import predict_test_splits, require_test_splits
from hf_wcord.summary import distillation_summary, evaluate_model, write_summary

logger = logging.getLogger(__name__)

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class DistillationModelArguments(HubLoadingArguments):
    """The teacher, and where the student comes from (exactly one of the three student options)."""

    teacher_name_or_path: str = field(
        metadata={"help": "The teacher, fine-tuned on the task: a Hub id or a local folder (see run_glue_teacher.py)."}
    )
    student_name_or_path: str | None = field(
        default=None, metadata={"help": "Student from a Hub id or a local folder (pretrained weights)."}
    )
    student_config_name: str | None = field(
        default=None, metadata={"help": "Student from a config (Hub id, folder or config.json), randomly initialised."}
    )
    student_layers: str | None = field(
        default=None,
        metadata={
            "help": (
                "Student made from the teacher: the teacher layers to copy, '0,4,8,11', or a layer count such as "
                "'3' for evenly spaced layers."
            )
        },
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer shared by teacher and student (default: the teacher's)."}
    )
    evaluate_teacher: bool = field(
        default=True, metadata={"help": "Also evaluate the teacher, for the side-by-side summary."}
    )
    measure_speedup: bool = field(
        default=True, metadata={"help": "Time teacher and student forward passes on an evaluation batch."}
    )

    def __post_init__(self) -> None:
        sources = [
            name for name in ("student_name_or_path", "student_config_name", "student_layers") if getattr(self, name)
        ]
        if len(sources) != 1:
            raise ValueError(
                "Choose the student with exactly one of --student_name_or_path, --student_config_name or "
                f"--student_layers (got {sources or 'none'})."
            )


def load_teacher(model_args: DistillationModelArguments, task: GlueTask) -> PreTrainedModel:
    """Load the teacher and make sure it was fine-tuned for the task (a trained head of the task's size)."""
    teacher, info = AutoModelForSequenceClassification.from_pretrained(
        model_args.teacher_name_or_path, output_loading_info=True, **model_args.hub_kwargs
    )
    fresh_head = [key for key in info.get("missing_keys", ()) if "classifier" in key or "score" in key]
    if fresh_head:
        raise ValueError(
            f"The teacher {model_args.teacher_name_or_path!r} has no trained classification head (missing "
            f"{sorted(fresh_head)}): fine-tune it on the task first, e.g. with examples/run_glue_teacher.py."
        )
    if teacher.config.num_labels != task.num_labels:
        raise ValueError(
            f"The teacher predicts {teacher.config.num_labels} labels but {task.name} has {task.num_labels}: use a "
            "teacher fine-tuned on this task."
        )
    return teacher.requires_grad_(False).eval()


def parse_layers(spec: str) -> list[int] | int:
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items or not all(item.isdigit() for item in items):
        raise ValueError(
            f"--student_layers {spec!r} must be a layer count ('3') or teacher layer indices ('0,4,8,11')."
        )
    numbers = [int(item) for item in items]
    return numbers[0] if len(numbers) == 1 and "," not in spec else numbers


def load_student(model_args: DistillationModelArguments, task: GlueTask, teacher: PreTrainedModel) -> PreTrainedModel:
    if model_args.student_layers:
        return init_student_from_teacher(teacher, parse_layers(model_args.student_layers))
    if model_args.student_config_name:
        config = AutoConfig.from_pretrained(
            model_args.student_config_name, **task_head_kwargs(task), **model_args.hub_kwargs
        )
        return AutoModelForSequenceClassification.from_config(config, trust_remote_code=model_args.trust_remote_code)
    return AutoModelForSequenceClassification.from_pretrained(
        model_args.student_name_or_path,
        **task_head_kwargs(task),
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
        **model_args.hub_kwargs,
    )


def base_model(model_args: DistillationModelArguments) -> str:
    """The student's starting checkpoint for the model card: its pretrained weights, the teacher whose layers it
    copies, or none for a random init (local folders are left out of the card)."""
    if model_args.student_layers:
        return model_args.teacher_name_or_path
    return model_args.student_name_or_path or ""


def check_shared_tokenizer(model_args: DistillationModelArguments, tokenizer: PreTrainedTokenizerBase) -> None:
    """Teacher and student read the same input_ids: a student with its own, different tokenizer is refused."""
    student_source = model_args.student_name_or_path
    if not student_source or model_args.tokenizer_name:
        return
    try:
        student_tokenizer = AutoTokenizer.from_pretrained(student_source, **model_args.hub_kwargs)
    except (OSError, ValueError):
        return
    if student_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ValueError(
            f"The student {student_source!r} has its own tokenizer ({len(student_tokenizer)} tokens) that differs "
            f"from the teacher's ({len(tokenizer)} tokens), but both models read the same input_ids: pick a student "
            "with the teacher's vocabulary (--student_layers, or --student_config_name with the teacher's "
            "vocab_size), or pass --tokenizer_name to force one tokenizer for both."
        )


def speed_batch(evaluation: dict[str, Any], collator: Any, size: int) -> dict[str, Any] | None:
    """The first `size` rows of the first evaluation split, collated with the model inputs only."""
    if not evaluation:
        return None
    dataset = next(iter(evaluation.values()))
    columns = [name for name in MODEL_INPUTS if name in dataset.column_names]
    return collator(list(dataset.select_columns(columns).select(range(min(len(dataset), size)))))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_arguments(
        (DistillationModelArguments, GlueDataArguments, WCoRDConfig), argv
    )
    setup_logging(training_args)
    set_seed(training_args.seed)
    raw, task = load_glue(data_args, model_args.cache_dir, model_args.token)
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name or model_args.teacher_name_or_path, **model_args.hub_kwargs
    )
    check_shared_tokenizer(model_args, tokenizer)
    teacher = load_teacher(model_args, task)
    student = load_student(model_args, task, teacher)
    with training_args.main_process_first(desc="tokenization"):
        train, evaluation = tokenize_glue(
            raw, task, tokenizer, data_args, training_args.seed, training_args.index_column
        )
        test = tokenize_test_splits(raw, task, tokenizer, data_args) if training_args.do_predict else {}
    if training_args.do_predict:
        require_test_splits(test, task)
    collator = default_data_collator if data_args.pad_to_max_length else DataCollatorWithPadding(tokenizer)
    trainer = WCoRDTrainer(
        model=student,
        teacher_model=teacher,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation or None,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=task.metrics_function(),
    )
    from_hub = data_args.train_file is None and data_args.dataset_dir is None
    trainer.model_card_info = ModelCardInfo(
        dataset=data_args.dataset_name if from_hub else None,
        dataset_config=task.name,
        base_model=base_model(model_args),
    )
    results: dict[str, Any] = {}
    if training_args.do_train:
        results.update(train_and_record(trainer))
    student_results = evaluate_splits(trainer, evaluation) if training_args.do_eval and evaluation else {}
    results.update(student_results)
    if training_args.do_train:
        trainer.save_model()
    evaluated = evaluation if training_args.do_eval else {}
    teacher_results = None
    if model_args.evaluate_teacher and evaluated:
        teacher_results = evaluate_model(teacher, evaluated, training_args, collator, trainer.compute_metrics)
    batch = (
        speed_batch(evaluated, collator, training_args.per_device_eval_batch_size)
        if model_args.measure_speedup
        else None
    )
    summary = distillation_summary(
        trainer, teacher, model_args.teacher_name_or_path, student_results, teacher_results, batch
    )
    results["summary"] = summary
    write_summary(trainer, summary)
    if training_args.do_predict:
        results["predictions"] = predict_test_splits(trainer, test, task)
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return results


if __name__ == "__main__":
    main()
