"""The checks `WCoRDTrainer` makes on its arguments before anything is built, each failing with the problem and the
fix; and the defaults it fills in (the config, the teacher loaded from a name, the two-tokenizer collator)."""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from .config import WCoRDConfig
from .teacher import check_compatible, is_regression, load_teacher
from .teacher_inputs import DistillationDataCollator, has_teacher_inputs


def check_trainer_arguments(
    model: nn.Module | None,
    teacher_model: nn.Module | str | None,
    args: WCoRDConfig | None,
    teacher_processing_class: PreTrainedTokenizerBase | None,
    kwargs: dict[str, Any],
) -> tuple[nn.Module, WCoRDConfig]:
    """Validate the trainer's arguments; return the teacher (loaded when given by name) and the config. A
    `DistillationDataCollator` is put into `kwargs` when the teacher has its own tokenizer and no collator is given.
    """
    if model is None:
        raise ValueError("`model` (the student) is required.")
    if teacher_model is None:
        raise ValueError("`teacher_model` is required: pass the fine-tuned teacher model or its path.")
    if args is None:
        args = WCoRDConfig(output_dir="wcord_output")
    elif not isinstance(args, WCoRDConfig):
        raise TypeError(
            f"`args` must be a WCoRDConfig, got {type(args).__name__}: build it with "
            "`WCoRDConfig(**training_args.to_dict())` or pass the distillation settings to WCoRDConfig."
        )
    if isinstance(teacher_model, str):
        teacher_model = load_teacher(teacher_model, model, args.teacher_model_init_kwargs)
    train_columns = getattr(kwargs.get("train_dataset"), "column_names", None)
    check_compatible(teacher_model, model, separate_inputs=has_teacher_inputs(train_columns))
    if teacher_processing_class is not None and kwargs.get("data_collator") is None:
        if kwargs.get("processing_class") is None:
            raise ValueError(
                "`teacher_processing_class` is given but not the student's `processing_class`: pass both "
                "tokenizers so that each model's inputs are padded with its own."
            )
        kwargs["data_collator"] = DistillationDataCollator(kwargs["processing_class"], teacher_processing_class)
    if args.label_aware_negatives and is_regression(model):
        raise ValueError(
            "`label_aware_negatives=True` leaves out negatives of the anchor's class, but the student is a "
            "regression model: set `label_aware_negatives=False`."
        )
    if args.uses_representation_terms and (kwargs.get("optimizers") or (None, None))[0] is not None:
        raise ValueError(
            "A ready-made optimizer was passed in `optimizers`, but the WCoRD projection heads need their own "
            "parameter group in it: pass `optimizer_cls_and_kwargs=(optimizer_class, kwargs)` instead, so that "
            "the trainer builds the optimizer over the student and the heads (or set `lambda_global=0` and "
            "`lambda_local=0`)."
        )
    return teacher_model, args
