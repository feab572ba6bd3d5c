"""Distil a sentence encoder into a smaller one without labels, and save it as a sentence-transformers model.

    python examples/run_embedding_distill.py --teacher_name_or_path sentence-transformers/all-mpnet-base-v2 \\
        --student_name_or_path sentence-transformers/all-MiniLM-L6-v2 --student_layers 1,3,5 \\
        --glue_dir ../shared/data/glue --glue_tasks sst2,rte --max_train_samples 20000 \\
        --objective global+local --teacher_cache cache/mpnet --max_steps 1000 --output_dir students/minilm3

Teacher and student are base encoders (`AutoModel`): a sentence-transformers folder or Hub id, or any BERT-class
model. The student comes from a checkpoint (optionally keeping some of its layers, `--student_layers 1,3,5`), from
the teacher's layers (`--student_layers 3` alone), or from a config (`--student_config_name`, random init). Each
model reads its own tokenization when their vocabularies differ. The objective is `--objective`'s terms on the pooled
sentence embeddings: mse, cosine, distilcse, global, local, or sums such as mse+global+local. Training sentences are
distinct and never include an evaluation sentence (the STS pairs, the probe's test rows).

At the end teacher and student are evaluated side by side: STS Spearman (cosine against gold, default the STS-B
validation pairs) and a frozen-embedding logistic-regression probe (default SST-2), with parameter counts and the
measured speed-up, written to `distillation_summary.json`; the student is saved so that both `SentenceTransformer`
and `AutoModel` load it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import AutoConfig, AutoModel, DataCollatorWithPadding, PreTrainedModel, set_seed

from hf_wcord import (
    DistillationDataCollator,
    EmbeddingDistillationConfig,
    EmbeddingDistillationTrainer,
    init_student_from_teacher,
)
from hf_wcord.tasks.cli import (
    HubLoadingArguments,
    end_processes,
    load_tokenizer,
    parse_arguments,
    parse_layers,
    setup_logging,
    train_and_record,
)
from hf_wcord.tasks.embedding_eval import encode, linear_probe_accuracy, sts_spearman
from hf_wcord.tasks.profiling import inference_speedup, parameter_count
from hf_wcord.tasks.sentences import (
    EvaluationData,
    SentenceDataArguments,
    distinct_training_sentences,
    load_evaluation_data,
    load_training_sentences,
    tokenize_sentences,
)

logger = logging.getLogger(__name__)


@dataclass
class EmbeddingModelArguments(HubLoadingArguments):
    """The teacher encoder, and where the student comes from."""

    teacher_name_or_path: str = field(metadata={"help": "The teacher encoder: a Hub id or a local folder."})
    student_name_or_path: str | None = field(default=None, metadata={"help": "Student from a Hub id or a folder."})
    student_config_name: str | None = field(
        default=None, metadata={"help": "Student from a config (Hub id, folder or config.json), randomly initialised."}
    )
    student_layers: str | None = field(
        default=None,
        metadata={
            "help": (
                "Layers to keep: of --student_name_or_path when given ('1,3,5' of a 6-layer MiniLM), else of the "
                "teacher ('0,4,8' or a count such as '3')."
            )
        },
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "The student's tokenizer (default: its own)."})
    add_dense_to_teacher_width: bool = field(
        default=False,
        metadata={"help": "Save the baselines' map to the teacher's width as a Dense module (mse/cosine/distilcse)."},
    )
    evaluate_teacher: bool = field(default=True, metadata={"help": "Also evaluate the teacher, side by side."})

    def __post_init__(self) -> None:
        if bool(self.student_name_or_path) + bool(self.student_config_name) + bool(
            self.student_layers and not self.student_name_or_path
        ) != 1 or (self.student_config_name and self.student_layers):
            raise ValueError(
                "Choose the student with one of --student_name_or_path (optionally with --student_layers), "
                "--student_config_name, or --student_layers alone (the teacher's layers)."
            )


def load_student(args: EmbeddingModelArguments, teacher: PreTrainedModel) -> PreTrainedModel:
    if args.student_config_name:
        config = AutoConfig.from_pretrained(args.student_config_name, **args.hub_kwargs)
        return AutoModel.from_config(config, trust_remote_code=args.trust_remote_code)
    if args.student_name_or_path is None:
        return init_student_from_teacher(teacher, parse_layers(args.student_layers))
    student = AutoModel.from_pretrained(args.student_name_or_path, **args.hub_kwargs)
    return init_student_from_teacher(student, parse_layers(args.student_layers)) if args.student_layers else student


def evaluate_encoder(model: Any, tokenizer: Any, data: EvaluationData, pooling: str, seed: int) -> dict[str, float]:
    """STS Spearman and the linear probe's accuracy of one encoder."""
    first, second = (
        encode(model, tokenizer, data.sts_first, pooling),
        encode(model, tokenizer, data.sts_second, pooling),
    )
    probe_train = encode(model, tokenizer, data.probe_train, pooling)
    probe_test = encode(model, tokenizer, data.probe_test, pooling)
    return {
        "eval_sts_spearman": sts_spearman(first, second, data.sts_gold),
        "eval_probe_accuracy": linear_probe_accuracy(
            probe_train, data.probe_train_labels, probe_test, data.probe_test_labels, seed
        ),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_arguments(
        (EmbeddingModelArguments, SentenceDataArguments, EmbeddingDistillationConfig), argv
    )
    setup_logging(training_args)
    set_seed(training_args.seed)
    teacher = AutoModel.from_pretrained(model_args.teacher_name_or_path, **model_args.hub_kwargs)
    teacher.requires_grad_(False).eval()
    teacher_tokenizer = load_tokenizer(
        model_args.teacher_name_or_path, "--teacher_name_or_path", **model_args.hub_kwargs
    )
    student = load_student(model_args, teacher)
    tokenizer_source = model_args.tokenizer_name or model_args.student_name_or_path
    tokenizer = (
        load_tokenizer(tokenizer_source, "--tokenizer_name", **model_args.hub_kwargs) if tokenizer_source else None
    )
    tokenizer = tokenizer or teacher_tokenizer
    separate = tokenizer.get_vocab() != teacher_tokenizer.get_vocab()
    evaluation = load_evaluation_data(data_args)
    held_out = evaluation.held_out_sentences if evaluation else set()
    with training_args.main_process_first(desc="tokenization"):
        sentences = distinct_training_sentences(
            load_training_sentences(data_args, model_args.cache_dir), held_out, training_args.seed,
            data_args.max_train_samples,
        )  # fmt: skip
        train = tokenize_sentences(
            sentences, tokenizer, teacher_tokenizer if separate else None, data_args.max_seq_length
        )
    logger.info(f"Distilling on {len(sentences):,} distinct sentences (evaluation sentences left out).")
    collator = (
        DistillationDataCollator(tokenizer, teacher_tokenizer) if separate else DataCollatorWithPadding(tokenizer)
    )
    trainer = EmbeddingDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=training_args,
        train_dataset=train,
        processing_class=tokenizer,
        teacher_processing_class=teacher_tokenizer if separate else None,
        data_collator=collator,
        add_dense_to_teacher_width=model_args.add_dense_to_teacher_width,
        max_seq_length=data_args.max_seq_length,
    )
    results: dict[str, Any] = {}
    if training_args.do_train:
        results.update(train_and_record(trainer))
    pooling = trainer.sentence_pipeline.pooling
    summary: dict[str, Any] = {
        "teacher": {"name": model_args.teacher_name_or_path, "parameters": parameter_count(teacher)},
        "student": {"parameters": parameter_count(student)},
        "training_sentences": len(sentences),
        "objective": training_args.objective,
    }
    if evaluation is not None:
        student_scores = evaluate_encoder(trainer.model, tokenizer, evaluation, pooling, training_args.seed)
        trainer.log(student_scores)
        summary["student"].update(student_scores)
        results.update(student_scores)
        if model_args.evaluate_teacher:
            summary["teacher"].update(
                evaluate_encoder(teacher, teacher_tokenizer, evaluation, pooling, training_args.seed)
            )
        batch = tokenizer(evaluation.sts_first[:64], padding=True, truncation=True, return_tensors="pt")
        teacher_batch = teacher_tokenizer(
            evaluation.sts_first[:64], padding=True, truncation=True, return_tensors="pt"
        )
        batch.update({f"teacher_{name}": value for name, value in teacher_batch.items()})
        device = trainer.model.device
        summary["speedup"] = inference_speedup(
            teacher.to(device), trainer.model, {name: value.to(device) for name, value in batch.items()}
        )
    if training_args.do_train:
        trainer.save_model()
        trainer.save_state()
    results["summary"] = summary
    if trainer.is_world_process_zero():
        os.makedirs(training_args.output_dir, exist_ok=True)
        with open(
            os.path.join(training_args.output_dir, "distillation_summary.json"), "w", encoding="utf-8"
        ) as handle:
            json.dump(summary, handle, indent=2)
        print("Distillation summary\n  " + json.dumps(summary, indent=2).replace("\n", "\n  "))
    end_processes()
    return results


if __name__ == "__main__":
    main()
