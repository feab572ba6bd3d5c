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
Unlabeled transfer rows (`--transfer_file`, or `--transfer_dataset_name` with `--transfer_split`) are distilled on
besides the labelled ones: the task loss reads the labelled rows, KD and the WCoRD terms every row
(`--labelled_batch_share 0.25` keeps a quarter of each batch labelled).
The teacher may have its own tokenizer (an MPNet or RoBERTa teacher, a BERT-class student): each model then reads its
own tokenization of the same text (`--teacher_tokenizer_name` overrides the teacher's). `--do_predict` writes the
student's predictions on the test split(s) in GLUE's submission format
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
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    default_data_collator,
    set_seed,
)

from hf_wcord import DistillationDataCollator, ModelCardInfo, WCoRDConfig, WCoRDTrainer, init_student_from_teacher
from hf_wcord.tasks.cli import (
    HubLoadingArguments,
    end_processes,
    evaluate_splits,
    load_tokenizer,
    parse_arguments,
    parse_layers,
    setup_logging,
    train_and_record,
)
from hf_wcord.tasks.glue import (
    GlueDataArguments,
    GlueTask,
    load_glue,
    task_head_kwargs,
    tokenize_glue,
    tokenize_test_splits,
)
from hf_wcord.tasks.predictions import predict_test_splits, require_test_splits
from hf_wcord.tasks.summary import distillation_summary, evaluate_model, write_summary
from hf_wcord.tasks.transfer import (
    TransferDataArguments,
    load_transfer_text,
    shared_text_rows,
    tokenize_transfer_text,
)
from hf_wcord.teacher import resolve_dtype
from hf_wcord.teacher_inputs import TEACHER_COLUMNS, as_teacher_dataset

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
                "'3' for evenly spaced layers. With --student_name_or_path, the layers are taken from that "
                "checkpoint instead (e.g. a 3-layer student from a 6-layer MiniLM)."
            )
        },
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={
            "help": (
                "The student's tokenizer (default: the one saved with --student_name_or_path, else the teacher's). "
                "When its vocabulary is not the teacher's, each model reads its own tokenization of the text."
            )
        },
    )
    teacher_tokenizer_name: str | None = field(
        default=None, metadata={"help": "The teacher's tokenizer (default: the one saved with the teacher)."}
    )
    teacher_revision: str | None = field(
        default=None, metadata={"help": "Branch, tag or commit of a Hub teacher (default: --model_revision)."}
    )
    teacher_dtype: str | None = field(
        default=None,
        metadata={
            "help": (
                "dtype the teacher is loaded in: 'auto' (as saved), 'bfloat16', 'float16' or 'float32' (default: "
                "transformers' default). A half-precision teacher halves its memory; the loss terms stay in fp32."
            )
        },
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
        from_checkpoint_layers = sources == ["student_name_or_path", "student_layers"]
        if len(sources) != 1 and not from_checkpoint_layers:
            raise ValueError(
                "Choose the student with exactly one of --student_name_or_path, --student_config_name or "
                "--student_layers (or --student_name_or_path with --student_layers, to keep some of that "
                f"checkpoint's layers); got {sources or 'none'}."
            )


def teacher_hub_kwargs(model_args: DistillationModelArguments) -> dict[str, Any]:
    """`from_pretrained` keyword arguments for the teacher and its tokenizer: its own revision when given."""
    return {**model_args.hub_kwargs, "revision": model_args.teacher_revision or model_args.model_revision}


def load_teacher(model_args: DistillationModelArguments, task: GlueTask) -> PreTrainedModel:
    """Load the teacher (with its revision and dtype) and make sure it was fine-tuned for the task (a trained head
    of the task's size)."""
    dtype = model_args.teacher_dtype
    if dtype not in (None, "auto", "bfloat16", "float16", "float32"):
        raise ValueError(f"--teacher_dtype {dtype!r}: use auto, bfloat16, float16 or float32.")
    dtype_kwargs = {} if dtype is None else {"dtype": resolve_dtype(dtype)}
    teacher, info = AutoModelForSequenceClassification.from_pretrained(
        model_args.teacher_name_or_path, output_loading_info=True, **dtype_kwargs, **teacher_hub_kwargs(model_args)
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


def load_student(model_args: DistillationModelArguments, task: GlueTask, teacher: PreTrainedModel) -> PreTrainedModel:
    """The student from its pretrained checkpoint (optionally keeping some of its layers), its config, or the
    teacher's layers."""
    if model_args.student_config_name:
        config = AutoConfig.from_pretrained(
            model_args.student_config_name, **task_head_kwargs(task), **model_args.hub_kwargs
        )
        return AutoModelForSequenceClassification.from_config(config, trust_remote_code=model_args.trust_remote_code)
    if model_args.student_name_or_path is None:
        return init_student_from_teacher(teacher, parse_layers(model_args.student_layers))
    student = AutoModelForSequenceClassification.from_pretrained(
        model_args.student_name_or_path,
        **task_head_kwargs(task),
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
        **model_args.hub_kwargs,
    )
    if model_args.student_layers:
        return init_student_from_teacher(student, parse_layers(model_args.student_layers))
    return student


def base_model(model_args: DistillationModelArguments) -> str:
    """The student's starting checkpoint for the model card: its pretrained weights, the teacher whose layers it
    copies, or none for a random init (local folders are left out of the card)."""
    if model_args.student_name_or_path:
        return model_args.student_name_or_path
    return model_args.teacher_name_or_path if model_args.student_layers else ""


def load_tokenizers(
    model_args: DistillationModelArguments,
) -> tuple[PreTrainedTokenizerBase, PreTrainedTokenizerBase | None]:
    """The student's tokenizer, and the teacher's when its vocabulary differs (else None: both read the same
    input_ids). The student's is `--tokenizer_name`, else the one saved with `--student_name_or_path`, else the
    teacher's; a student made from teacher layers always reads the teacher's."""
    teacher_tokenizer = load_tokenizer(
        model_args.teacher_tokenizer_name or model_args.teacher_name_or_path,
        "--teacher_tokenizer_name",
        **teacher_hub_kwargs(model_args),
    )
    if model_args.student_layers and not model_args.student_name_or_path:
        return teacher_tokenizer, None
    tokenizer = None
    if model_args.tokenizer_name:
        tokenizer = load_tokenizer(model_args.tokenizer_name, "--tokenizer_name", **model_args.hub_kwargs)
    elif model_args.student_name_or_path:
        try:
            tokenizer = load_tokenizer(model_args.student_name_or_path, "--tokenizer_name", **model_args.hub_kwargs)
        except (OSError, ValueError):
            logger.info("The student has no tokenizer of its own: it reads the teacher's.")
    if tokenizer is None or tokenizer.get_vocab() == teacher_tokenizer.get_vocab():
        return tokenizer or teacher_tokenizer, None
    logger.info(
        f"The student's tokenizer ({len(tokenizer)} tokens) is not the teacher's ({len(teacher_tokenizer)} tokens): "
        "each model reads its own tokenization of the text."
    )
    return tokenizer, teacher_tokenizer


def speed_batch(evaluation: dict[str, Any], collator: Any, size: int) -> dict[str, Any] | None:
    """The first `size` rows of the first evaluation split, collated with the models' inputs only."""
    if not evaluation:
        return None
    dataset = next(iter(evaluation.values()))
    columns = [name for name in (*MODEL_INPUTS, *TEACHER_COLUMNS) if name in dataset.column_names]
    return collator(list(dataset.select_columns(columns).select(range(min(len(dataset), size)))))


def warn_of_shared_rows(transfer: Any, raw: Any, task: GlueTask) -> None:
    """Warn when transfer rows repeat the text of evaluation rows (the student would have seen them)."""
    for split in task.eval_splits:
        if split in raw:
            shared = shared_text_rows(transfer, raw[split], task)
            if shared:
                logger.warning(
                    f"{shared:,} of the {len(transfer):,} transfer rows repeat a text of the {split} split: its "
                    "scores would not be held out. Remove those rows from the transfer data."
                )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    model_args, data_args, transfer_args, training_args = parse_arguments(
        (DistillationModelArguments, GlueDataArguments, TransferDataArguments, WCoRDConfig), argv
    )
    setup_logging(training_args)
    set_seed(training_args.seed)
    raw, task = load_glue(data_args, model_args.cache_dir, model_args.token)
    tokenizer, teacher_tokenizer = load_tokenizers(model_args)
    teacher = load_teacher(model_args, task)
    student = load_student(model_args, task, teacher)
    with training_args.main_process_first(desc="tokenization"):
        train, evaluation = tokenize_glue(
            raw, task, tokenizer, data_args, training_args.seed, training_args.index_column, teacher_tokenizer
        )
        test = tokenize_test_splits(raw, task, tokenizer, data_args) if training_args.do_predict else {}
        transfer = load_transfer_text(transfer_args, task, training_args.seed, model_args.cache_dir, model_args.token)
        if transfer is not None:
            warn_of_shared_rows(transfer, raw, task)
            transfer = tokenize_transfer_text(transfer, task, tokenizer, data_args, teacher_tokenizer)
    if training_args.do_predict:
        require_test_splits(test, task)
    if data_args.pad_to_max_length:
        collator = default_data_collator
    elif teacher_tokenizer is not None:
        collator = DistillationDataCollator(tokenizer, teacher_tokenizer)
    else:
        collator = DataCollatorWithPadding(tokenizer)
    trainer = WCoRDTrainer(
        model=student,
        teacher_model=teacher,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation or None,
        processing_class=tokenizer,
        teacher_processing_class=teacher_tokenizer,
        data_collator=collator,
        compute_metrics=task.metrics_function(),
        transfer_dataset=transfer,
    )
    from_hub = data_args.train_file is None and data_args.dataset_dir is None
    trainer.model_card_info = ModelCardInfo(
        dataset=data_args.dataset_name if from_hub else None,
        dataset_config=task.name,
        transfer_dataset=transfer_args.transfer_dataset_name,
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
        teacher_data = {split: as_teacher_dataset(dataset) for split, dataset in evaluated.items()}
        teacher_collator = collator if teacher_tokenizer is None else DataCollatorWithPadding(teacher_tokenizer)
        teacher_results = evaluate_model(
            trainer.teacher_model, teacher_data, trainer, teacher_collator, trainer.compute_metrics
        )
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
    end_processes()
    return results


if __name__ == "__main__":
    main()
