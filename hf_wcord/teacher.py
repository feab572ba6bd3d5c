"""The teacher: loading it, checking that it fits the student, freezing it and placing it through Accelerate
(DeepSpeed included)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import logging

logger = logging.get_logger(__name__)


def freeze_teacher(teacher: nn.Module) -> nn.Module:
    """Put the teacher in eval mode with no trainable parameter, warning when some were trainable."""
    trainable = sum(p.numel() for p in teacher.parameters() if p.requires_grad)
    if trainable:
        logger.warning(
            f"The teacher had {trainable:,} trainable parameters; they are now frozen (requires_grad=False). "
            "The teacher is never updated during distillation."
        )
    teacher.requires_grad_(False)
    return teacher.eval()


def prepare_deepspeed(model: nn.Module, accelerator: Accelerator) -> nn.Module:
    """Wrap a frozen model in a DeepSpeed inference engine that matches the training run's ZeRO setup.

    As in TRL's trainers: under ZeRO-3 the teacher is sharded like the student (bucket sizes from its hidden size);
    under ZeRO-1/2 it only needs inference, so it runs with ZeRO disabled. The run's `optimizer` and `scheduler`
    sections are left out: a frozen model has nothing to optimise (DeepSpeed would build a ZeRO optimizer over no
    trainable parameters and fail).
    """
    import deepspeed

    config_kwargs = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    config_kwargs.pop("optimizer", None)
    config_kwargs.pop("scheduler", None)
    stage = config_kwargs["zero_optimization"]["stage"]
    hidden_sizes = getattr(model.config, "hidden_sizes", None)
    hidden_size = max(hidden_sizes) if hidden_sizes else getattr(model.config, "hidden_size", None)
    if hidden_size is not None and stage == 3:
        config_kwargs.update(
            {
                "zero_optimization.reduce_bucket_size": hidden_size * hidden_size,
                "zero_optimization.stage3_param_persistence_threshold": 10 * hidden_size,
                "zero_optimization.stage3_prefetch_bucket_size": 0.9 * hidden_size * hidden_size,
            }
        )
    if stage != 3:
        config_kwargs["zero_optimization"]["stage"] = 0
    engine, *_ = deepspeed.initialize(model=model, config=config_kwargs)
    engine.eval()
    return engine


def prepare_fsdp(model: nn.Module, accelerator: Accelerator) -> nn.Module:
    """Shard a frozen model over the processes with the run's FSDP settings, as TRL does for its teacher and
    reference models (Accelerate's `prepare_model` leaves a model in evaluation mode whole on every process).

    FSDP 2: `fully_shard` on each layer the plugin's wrap policy picks (the transformer blocks), then on the whole
    model, so that the forward pass gathers one block at a time. FSDP 1: a `FullyShardedDataParallel` wrapper.
    """
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel, MixedPrecisionPolicy, fully_shard

    if isinstance(model, (FSDPModule, FullyShardedDataParallel)):
        return model.eval()
    plugin = accelerator.state.fsdp_plugin
    if plugin.fsdp_version == 1:
        plugin.set_auto_wrap_policy(model)
        wrapped = FullyShardedDataParallel(
            model,
            sharding_strategy=plugin.sharding_strategy,
            cpu_offload=plugin.cpu_offload,
            auto_wrap_policy=plugin.auto_wrap_policy,
            mixed_precision=plugin.mixed_precision_policy,
            use_orig_params=plugin.use_orig_params,
            device_id=accelerator.device,
        )
        return wrapped.eval()
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    options: dict[str, Any] = {
        "reshard_after_forward": plugin.reshard_after_forward,
        "mp_policy": plugin.mixed_precision_policy or MixedPrecisionPolicy(),
    }
    if plugin.cpu_offload is not None:
        options["offload_policy"] = plugin.cpu_offload
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    if policy is not None:
        for module in reversed(list(model.modules())[1:]):
            if policy(module):
                fully_shard(module, **options)
    fully_shard(model, **options)
    return model.eval()


def prepare_teacher(
    teacher: nn.Module, accelerator: Accelerator, is_deepspeed_enabled: bool, is_fsdp_enabled: bool = False
) -> nn.Module:
    """Freeze the teacher and place it for inference the way the student's run is set up: a DeepSpeed inference
    engine under DeepSpeed, sharded under FSDP, else on each process' device."""
    freeze_teacher(teacher)
    if is_deepspeed_enabled:
        return prepare_deepspeed(teacher, accelerator)
    if is_fsdp_enabled:
        return prepare_fsdp(teacher.to(accelerator.device), accelerator)
    return accelerator.prepare_model(teacher, evaluation_mode=True)


def is_regression(model: nn.Module) -> bool:
    """Whether a model predicts one score per example (`problem_type='regression'` or `num_labels=1`)."""
    config = getattr(model, "config", None)
    return getattr(config, "problem_type", None) == "regression" or getattr(config, "num_labels", 0) == 1


def resolve_dtype(dtype: str | torch.dtype | None) -> str | torch.dtype | None:
    """A dtype given by name (`"bfloat16"`) as the torch dtype; `"auto"`, None and torch dtypes pass through."""
    if not isinstance(dtype, str) or dtype == "auto":
        return dtype
    if not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ValueError(f"Unknown teacher dtype {dtype!r}: use 'auto', 'float32', 'bfloat16' or 'float16'.")
    return getattr(torch, dtype)


def load_teacher(name_or_path: str, student: nn.Module, init_kwargs: dict[str, Any] | None = None) -> PreTrainedModel:
    """Load a teacher from a Hub id or folder with the Auto class of the student's modality, passing `init_kwargs`
    (`dtype`, `revision`, `trust_remote_code`, ...) to `from_pretrained` as TRL does with
    `teacher_model_init_kwargs`; a `dtype` given as a string (`"bfloat16"`) is turned into the torch dtype."""
    from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

    kwargs = dict(init_kwargs or {})
    if "dtype" in kwargs:
        kwargs["dtype"] = resolve_dtype(kwargs["dtype"])
    is_vision = getattr(student, "main_input_name", "input_ids") == "pixel_values"
    auto_class = AutoModelForImageClassification if is_vision else AutoModelForSequenceClassification
    return auto_class.from_pretrained(name_or_path, **kwargs)


def check_compatible(teacher: nn.Module, student: nn.Module, separate_inputs: bool = False) -> None:
    """Catch teacher/student pairs that cannot share a batch or a label space, before any training.

    `separate_inputs`: the data carry the teacher's own tokenization (`teacher_input_ids`), so the vocabularies may
    differ."""
    teacher_config, student_config = getattr(teacher, "config", None), getattr(student, "config", None)
    if teacher_config is None or student_config is None:
        return
    if is_regression(teacher) != is_regression(student):
        raise ValueError(
            "One of teacher and student is a regression model and the other a classifier: use a teacher fine-tuned "
            "for the same task type (num_labels=1 / problem_type='regression' for regression)."
        )
    teacher_labels = getattr(teacher_config, "num_labels", None)
    student_labels = getattr(student_config, "num_labels", None)
    if teacher_labels is not None and student_labels is not None and teacher_labels != student_labels:
        raise ValueError(
            f"The teacher predicts {teacher_labels} labels but the student {student_labels}: build the student with "
            f"`num_labels={teacher_labels}` (and the teacher's label2id) so that their logits can be compared."
        )
    teacher_vocab = getattr(teacher_config, "vocab_size", None)
    student_vocab = getattr(student_config, "vocab_size", None)
    if (
        not separate_inputs
        and teacher_vocab is not None
        and student_vocab is not None
        and teacher_vocab != student_vocab
    ):
        raise ValueError(
            f"Teacher and student vocabularies differ ({teacher_vocab} vs {student_vocab} tokens) but they read "
            "the same input_ids: give the teacher its own tokenization of each example, in `teacher_input_ids` / "
            "`teacher_attention_mask` columns (`dataset.map(lambda batch: hf_wcord.tokenize_for_teacher("
            "teacher_tokenizer, [batch['sentence']]), batched=True)`), and pass "
            "`teacher_processing_class=teacher_tokenizer` to WCoRDTrainer; or use a student with the teacher's "
            "tokenizer (e.g. `init_student_from_teacher`)."
        )
