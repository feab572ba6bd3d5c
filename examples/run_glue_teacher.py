"""Fine-tune a teacher on a GLUE task (or your own csv/json data), ready for `run_glue_distill.py`.

For users who start from a pretrained model only. Same data options as the distillation script:

    python examples/run_glue_teacher.py --model_name_or_path bert-base-uncased --task_name sst2 \\
        --do_train --do_eval --do_predict --output_dir teachers/sst2
    python examples/run_glue_teacher.py examples/configs/sst2_teacher.yaml --dataset_dir ../shared/data/glue
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from hf_wcord.tasks.cli import (
    HubLoadingArguments,
    end_processes,
    evaluate_splits,
    load_tokenizer,
    parse_arguments,
    setup_logging,
    train_and_record,
)
from hf_wcord.tasks.glue import GlueDataArguments, load_glue, task_head_kwargs, tokenize_glue, tokenize_test_splits
from hf_wcord.tasks.predictions import predict_test_splits, require_test_splits

logger = logging.getLogger(__name__)


@dataclass
class TeacherModelArguments(HubLoadingArguments):
    """The pretrained model to fine-tune into a teacher."""

    model_name_or_path: str = field(metadata={"help": "Pretrained model: a Hub id or a local folder."})
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer to use, if not the one saved with the model."}
    )


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_arguments(
        (TeacherModelArguments, GlueDataArguments, TrainingArguments), argv
    )
    setup_logging(training_args)
    set_seed(training_args.seed)
    raw, task = load_glue(data_args, model_args.cache_dir, model_args.token)
    hub_kwargs = model_args.hub_kwargs
    tokenizer_source = model_args.tokenizer_name or model_args.model_name_or_path
    tokenizer = load_tokenizer(tokenizer_source, "--tokenizer_name", **hub_kwargs)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_args.model_name_or_path,
        **task_head_kwargs(task),
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
        **hub_kwargs,
    )
    with training_args.main_process_first(desc="tokenization"):
        train, evaluation = tokenize_glue(raw, task, tokenizer, data_args, training_args.seed)
        test = tokenize_test_splits(raw, task, tokenizer, data_args) if training_args.do_predict else {}
    if training_args.do_predict:
        require_test_splits(test, task)
    collator = default_data_collator if data_args.pad_to_max_length else DataCollatorWithPadding(tokenizer)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train.remove_columns("idx") if training_args.do_train else None,
        eval_dataset=evaluation or None,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=task.metrics_function(),
    )
    results: dict[str, float] = {}
    if training_args.do_train:
        results.update(train_and_record(trainer))
        trainer.save_model()
    if training_args.do_eval and evaluation:
        results.update(evaluate_splits(trainer, evaluation))
    if training_args.do_predict:
        predict_test_splits(trainer, test, task)
    if training_args.push_to_hub:
        trainer.push_to_hub(
            finetuned_from=model_args.model_name_or_path,
            tasks="text-classification",
            dataset_tags=data_args.dataset_name,
            dataset_args=task.name,
            dataset=f"GLUE {task.name.upper()}",
        )
    end_processes()
    return results


if __name__ == "__main__":
    main()
