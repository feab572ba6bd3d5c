"""`EmbeddingDistillationTrainer`: distil a sentence encoder (a base model, no head) into a smaller one on unlabeled
text, and save the student as a sentence-transformers model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.utils import logging

from .distiller import WCoRDDistiller
from .embedding_config import EmbeddingDistillationConfig
from .losses.embedding import EmbeddingObjectives
from .model_card import ModelCardInfo
from .sentence_transformers_io import SentencePipeline, read_sentence_pipeline, save_sentence_transformer
from .trainer import WCoRDTrainer

logger = logging.get_logger(__name__)

SENTENCE_TAGS = ("sentence-transformers", "sentence-similarity", "feature-extraction")


class EmbeddingDistillationTrainer(WCoRDTrainer):
    r"""Distil a frozen sentence encoder into a smaller one without labels: teacher and student are base encoders
    (`AutoModel`), and the objective is `args.objective`'s terms on their pooled sentence embeddings (the last
    layer pair of the layer map) and, for WCoRD's terms, on every mapped pair:

        L = lambda_mse * MSE + lambda_cosine * COS + lambda_distilcse * DCSE + lambda_global * global
            + lambda_local * local

    The sentence embedding follows the teacher's sentence-transformers pipeline when the teacher is a
    sentence-transformers model, a local folder or a Hub repository (its pooling, and whether it normalises), else
    `args.pooling` (mean by default).
    The baselines' student-to-teacher linear map and DistilCSE's queue live in the distiller, beside the student,
    and go into every checkpoint. `save_model` writes the student as transformers and sentence-transformers load it
    (with `add_dense_to_teacher_width`, the baselines' map as a Dense layer), and a sentence-similarity model card.

    Args:
        model: the student encoder.
        teacher_model: the teacher encoder, a model or a Hub id / local folder (loaded with `AutoModel`).
        args: an [`EmbeddingDistillationConfig`].
        add_dense_to_teacher_width: save the baselines' map W (student width -> teacher width) as a Dense module, so
            that the saved model's embeddings live in the teacher's space (needs an objective with mse, cosine or
            distilcse, and widths that differ).
        max_seq_length: the saved sentence-transformers model's longest input (tokens).
        **kwargs: every other [`WCoRDTrainer`] argument (`train_dataset` of tokenized sentences with the index
            column, `processing_class`, `teacher_processing_class`, ...).
    """

    def __init__(
        self,
        model: Any = None,
        teacher_model: Any = None,
        args: EmbeddingDistillationConfig | None = None,
        add_dense_to_teacher_width: bool = False,
        max_seq_length: int = 256,
        **kwargs: Any,
    ) -> None:
        if args is not None and not isinstance(args, EmbeddingDistillationConfig):
            raise TypeError(
                f"`args` must be an EmbeddingDistillationConfig, got {type(args).__name__}: it chooses the terms "
                "(`objective`) of a distillation without labels or logits."
            )
        args = args or EmbeddingDistillationConfig(output_dir="embedding_distillation")
        if isinstance(teacher_model, str):
            from transformers import AutoModel

            teacher_model = AutoModel.from_pretrained(teacher_model, **args.teacher_model_init_kwargs or {})
        self.sentence_pipeline = self._teacher_pipeline(teacher_model, args)
        if args.pooling == "auto":
            args.pooling = self.sentence_pipeline.pooling
        self.add_dense_to_teacher_width = add_dense_to_teacher_width
        self.max_seq_length = max_seq_length
        super().__init__(model=model, teacher_model=teacher_model, args=args, **kwargs)
        self.model_card_info = ModelCardInfo(
            pipeline_tag="sentence-similarity", library_name="sentence-transformers", tags=list(SENTENCE_TAGS)
        )

    @staticmethod
    def _teacher_pipeline(teacher: Any, args: EmbeddingDistillationConfig) -> SentencePipeline:
        pipeline = read_sentence_pipeline(getattr(getattr(teacher, "config", None), "_name_or_path", None))
        if pipeline is None:
            pipeline = SentencePipeline(pooling="first" if args.pooling == "first" else "mean")
        if args.normalize_teacher_embeddings is not None:
            pipeline.normalize = args.normalize_teacher_embeddings
        return pipeline

    @property
    def loss_weights(self) -> dict[str, float]:
        weights = super().loss_weights
        return {
            **weights,
            "mse": self.args.lambda_mse,
            "cosine": self.args.lambda_cosine,
            "distilcse": self.args.lambda_distilcse,
        }

    def _build_distiller(self) -> WCoRDDistiller:
        distiller = super()._build_distiller()
        last_teacher, last_student = self.layer_pairs[-1]
        teacher_depth = self.teacher_model.config.num_hidden_layers
        student_depth = self.model.config.num_hidden_layers
        if (last_teacher, last_student) != (teacher_depth, student_depth):
            raise ValueError(
                f"The sentence embeddings are the last layers' pooled states, but the layer map's last pair is "
                f"{(last_teacher, last_student)}: use a layer map that ends with the last layers (`last`, `uniform`, "
                f"or pairs ending in '{teacher_depth}:{student_depth}')."
            )
        teacher_dim = distiller.teacher_heads[-1].in_dim
        student_dim = distiller.student_heads[-1].in_dim
        available = len(self.train_dataset) - 1 if hasattr(self.train_dataset, "__len__") else None
        queue = min(self.args.distilcse_queue_size, max(available or 1, 1))
        distiller.embedding_objectives = EmbeddingObjectives(
            self.args.embedding_terms,
            teacher_dim,
            student_dim,
            queue,
            self.args.distilcse_temperature,
            self.sentence_pipeline.normalize,
        ).to(self.args.device)
        if self.add_dense_to_teacher_width and not isinstance(distiller.embedding_objectives.to_teacher, nn.Linear):
            raise ValueError(
                "`add_dense_to_teacher_width` saves the map from the student's width to the teacher's that the mse, "
                "cosine and distilcse terms learn, but there is none: name one of them in `objective`, with a "
                f"student narrower or wider than the teacher (here {student_dim} and {teacher_dim})."
            )
        if distiller.embedding_objectives.distilcse is not None:
            distiller.embedding_objectives.distilcse.gather = distiller.gather
        return distiller

    def compute_loss_terms(
        self,
        inputs: dict[str, Any],
        student_outputs: Any,
        teacher_outputs: Any,
        index: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """The named terms of one batch: the baselines on the sentence embeddings (the last pair's pooled
        features), WCoRD's terms on every pair."""
        teacher_features, student_features = self._pooled_features(inputs, student_outputs, teacher_outputs)
        terms = self.distiller(teacher_features, student_features, index)
        terms.update(self.distiller.embedding_objectives(teacher_features[-1], student_features[-1]))
        return terms

    def warm_negative_stores(self) -> None:
        """Fill the memory bank, unless no WCoRD term reads it."""
        if self.distiller.compute_global or self.distiller.compute_local:
            super().warm_negative_stores()

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the student as transformers (weights, config, tokenizer) and sentence-transformers (modules,
        pooling, an optional Dense layer, Normalize) load it, with its model card."""
        output_dir = output_dir or self.args.output_dir
        super().save_model(output_dir, _internal_call=_internal_call)
        if not self.args.should_save:
            return
        save_sentence_transformer(output_dir, self.sentence_pipeline, self.max_seq_length, self._dense_layer())
        self._write_model_card(output_dir)

    def _dense_layer(self) -> nn.Linear | None:
        return self.distiller.embedding_objectives.to_teacher if self.add_dense_to_teacher_width else None
