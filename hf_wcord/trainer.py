"""`WCoRDTrainer`: a `transformers.Trainer` that distills a frozen teacher into the student with WCoRD."""

from __future__ import annotations

import itertools
import os
import time
from collections import defaultdict
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback
from transformers.utils import logging

from .checkpoints import (
    DISTILLER_STATE_NAME,
    latest_complete_checkpoint,
    load_distiller_state,
    missing_checkpoint_files,
    save_distiller_state,
)
from .config import WCoRDConfig
from .critic_warmup import can_warm_up_critic, warm_up_critic
from .distiller import WCoRDDistiller
from .distributed import average_gradients, check_ranks_agree, gather_with_grad, state_digest
from .features import get_hidden_states, pooled_features
from .labelled_sampler import labelled_share_sampler
from .layer_map import resolve_layer_map
from .losses.kd import kd_loss, regression_kd_loss
from .model_card import CARD_NAME, ModelCardInfo, render_model_card
from .negatives import bank_size, report_store_size, representation_ramp, warm_negative_stores
from .optimization import HEAD_OPTIMIZER_NAME, SeparateHeadOptimizer, add_head_parameter_group
from .student import gathered_parameters
from .teacher import is_regression, prepare_teacher
from .teacher_cache import (
    CachedTeacherOutputs,
    TeacherCache,
    build_teacher_cache,
    check_cacheable,
    dataset_fingerprint,
    model_fingerprint,
    open_or_build_teacher_cache,
)
from .teacher_inputs import (
    TEACHER_COLUMNS,
    student_inputs,
    teacher_inputs,
)
from .trainer_checks import check_trainer_arguments
from .unlabeled import (
    add_transfer_rows,
    check_training_rows,
    labelled_mask,
    labelled_task_loss,
    labels_for_negatives,
    problem_type,
)

logger = logging.get_logger(__name__)

PROBE_EXAMPLES = 2


def output_device(outputs: Any) -> torch.device:
    """The device of a model's outputs (its first tensor: logits, or an encoder's last hidden state)."""
    return next(value for value in outputs.values() if isinstance(value, torch.Tensor)).device


class StepDistillerHeads(TrainerCallback):
    """After each optimizer step of the student: step the heads' own optimizer where they have one (DeepSpeed), and
    clear the heads' gradients (the Trainer zeroes the student's alone)."""

    def __init__(self, trainer: WCoRDTrainer) -> None:
        self.trainer = trainer

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        head_optimizer = self.trainer.head_optimizer
        if head_optimizer is not None and not self.trainer.accelerator.optimizer_step_was_skipped:
            head_optimizer.step()
        self.trainer.distiller.zero_grad(set_to_none=True)


class WCoRDTrainer(Trainer):
    r"""Distill a frozen `teacher_model` into `model` (the student) with Wasserstein Contrastive Representation
    Distillation.

    Each training step runs the student and the teacher on the same batch and minimises

        L = alpha_ce * CE + alpha_kd * KD + lambda_global * global + lambda_local * local (+ GP weight * GP)

    (see [`WCoRDConfig`]). The projection heads and the memory bank (or queue) live in `self.distiller`, are trained
    with the student and saved in every checkpoint, but never with the student: `save_model` and `push_to_hub` write
    the student alone, with a model card.

    Evaluation runs the student alone; `eval_loss` is its own task loss.

    To add a term, subclass and override [`compute_loss_terms`]: return the parent's terms plus yours. Each term is
    multiplied by `loss_weights[name]` (1.0 for names it does not know) and logged as `loss_<name>`.

    Args:
        model: the student (`PreTrainedModel`).
        teacher_model: the teacher, a model or a Hub id / local folder (loaded with the Auto class of the student's
            modality and `args.teacher_model_init_kwargs`).
        args: a [`WCoRDConfig`].
        teacher_processing_class: the teacher's own tokenizer, when it is not the student's. The training data then
            carry the teacher's tokenization of each example in `teacher_input_ids` / `teacher_attention_mask`
            columns (`hf_wcord.tokenize_for_teacher`), and, unless a `data_collator` is given, batches are padded by
            a [`DistillationDataCollator`] (each model's inputs with its own tokenizer).
        transfer_dataset: unlabeled rows to distil on as well (a `datasets.Dataset` with the training rows' input
            columns, preprocessed the same way): appended to `train_dataset` with label -1 (NaN for regression) and
            the index column renumbered. Rows of `train_dataset` itself may also be marked unlabeled with -1
            (classification; a NaN regression target there is refused as ambiguous). The
            task loss is the mean over a batch's labelled rows (no term for a batch without one); KD and the
            representation terms read every row. `labelled_batch_share` keeps labelled rows in every batch.
        **kwargs: every other [`~transformers.Trainer`] argument (`train_dataset`, `data_collator`,
            `processing_class`, `compute_metrics`, `callbacks`, `optimizers`, ...).
    """

    def __init__(
        self,
        model: PreTrainedModel | nn.Module | None = None,
        teacher_model: PreTrainedModel | nn.Module | str | None = None,
        args: WCoRDConfig | None = None,
        teacher_processing_class: PreTrainedTokenizerBase | None = None,
        transfer_dataset: Any | None = None,
        **kwargs: Any,
    ) -> None:
        teacher_model, args = check_trainer_arguments(model, teacher_model, args, teacher_processing_class, kwargs)
        self.task = problem_type(model)
        self.transfer_start: int | None = None  # index of the first row appended from `transfer_dataset`
        if transfer_dataset is not None:
            self.transfer_start = len(kwargs.get("train_dataset") or [])
            kwargs["train_dataset"] = add_transfer_rows(
                kwargs.get("train_dataset"), transfer_dataset, args.index_column, self.task
            )
        self.training_rows = check_training_rows(kwargs.get("train_dataset"), args, self.task)
        self.teacher_processing_class = teacher_processing_class
        super().__init__(model=model, args=args, **kwargs)
        self.loss_is_scaled_for_ga = False
        self.model_accepts_loss_kwargs = False
        self.teacher_model = prepare_teacher(
            teacher_model, self.accelerator, self.is_deepspeed_enabled, self.is_fsdp_enabled
        )
        self.is_regression = is_regression(model)
        self.layer_pairs: list[tuple[int, int]] = []
        self.distiller: WCoRDDistiller | None = None
        self.head_optimizer: SeparateHeadOptimizer | None = None
        self._term_totals: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.args.device))
        self._term_counts: dict[str, int] = defaultdict(int)
        self._diagnostic_totals: dict[str, torch.Tensor] = defaultdict(
            lambda: torch.zeros((), device=self.args.device)
        )
        self._diagnostic_counts: dict[str, int] = defaultdict(int)
        self.critic_warmup_report: dict[str, float] = {}
        self.model_card_info = ModelCardInfo()
        if self.args.uses_representation_terms and self.train_dataset is not None:
            self.distiller = self._build_distiller()
            self.add_callback(StepDistillerHeads(self))
        self.teacher_cache: TeacherCache | None = None
        if self.args.teacher_cache and self.train_dataset is not None:
            self.teacher_cache = self._open_teacher_cache(self.args.teacher_cache)

    @property
    def loss_weights(self) -> dict[str, float]:
        """Weight of each named loss term in the total; the global and local weights ramp up over the first
        `representation_warmup_ratio` of the training steps."""
        ramp = representation_ramp(
            self.state.global_step, self.state.max_steps or 0, self.args.representation_warmup_ratio
        )
        return {
            "ce": self.args.alpha_ce,
            "kd": self.args.alpha_kd,
            "global": self.args.lambda_global * ramp,
            "local": self.args.lambda_local * ramp,
            "gradient_penalty": self.args.gradient_penalty_weight,
        }

    # ---- Building the distiller from a probe batch ----

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        for column in (self.args.index_column, *TEACHER_COLUMNS):
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    def _probe_batch(self) -> dict[str, Any]:
        """A collated, device-placed batch of the first training examples."""
        dataset = self.train_dataset
        if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
            examples = [dataset[i] for i in range(min(PROBE_EXAMPLES, len(dataset)))]
        else:
            examples = list(itertools.islice(iter(dataset), PROBE_EXAMPLES))
        if not examples:
            raise ValueError("`train_dataset` is empty: distillation needs at least one training example.")
        collator = self._get_collator_with_removed_columns(self.data_collator, "training")
        return self._prepare_inputs(collator(examples))

    @torch.no_grad()
    def _build_distiller(self) -> WCoRDDistiller:
        batch = self._probe_batch()
        index = batch.pop(self.args.index_column, None)
        batch.pop("labels", None)
        student = self.model
        was_training = student.training
        student.eval()
        teacher_batch = teacher_inputs(batch)
        with gathered_parameters(student):  # whole under ZeRO-3, where the student is not yet prepared
            student_outputs = student(**student_inputs(batch), output_hidden_states=True)
        student_states = get_hidden_states(student_outputs, "student")
        teacher_states = get_hidden_states(self.teacher_model(**teacher_batch, output_hidden_states=True), "teacher")
        student.train(was_training)
        self.layer_pairs = resolve_layer_map(self.args.layer_map, len(teacher_states), len(student_states))
        teacher_features = self._teacher_features(teacher_states, teacher_batch.get("attention_mask"))
        student_features = self._student_features(student_states, batch.get("attention_mask"))

        source = self.args.negatives_source
        if source == "auto":
            source = "bank" if index is not None else "queue"
            logger.info(f"WCoRD negatives come from a {'memory bank' if index is not None else 'FIFO queue'}.")
        num_slots = None
        if source == "bank":
            if index is None:
                raise ValueError(
                    f"`negatives_source='bank'` needs each example's dataset index, but the training batches have "
                    f"no {self.args.index_column!r} column: add one (`dataset.map(lambda _, i: "
                    f"{{'{self.args.index_column}': i}}, with_indices=True)`), set `index_column`, or use "
                    "`negatives_source='queue'`."
                )
            num_slots = bank_size(self.train_dataset, self.args.index_column)
            if self.args.lambda_global > 0 and num_slots < 2:
                raise ValueError(
                    "The global term draws negatives from the other training examples, but the training set holds "
                    f"{num_slots}: use more data or set `lambda_global=0`."
                )
            if self.args.lambda_global > 0 and (self.args.num_negatives or 0) > num_slots - 1:
                raise ValueError(
                    f"`num_negatives={self.args.num_negatives}` is more than the {num_slots - 1} other examples the "
                    f"training set holds: set `num_negatives` below {num_slots}."
                )
        distiller = WCoRDDistiller(
            [f.shape[-1] for f in teacher_features],
            [f.shape[-1] for f in student_features],
            self.args,
            num_slots,
            len(self.train_dataset) if hasattr(self.train_dataset, "__len__") else None,
        ).to(self.args.device)
        if self.accelerator.num_processes > 1:
            distiller.gather = self.accelerator.gather
            if self.args.local_over_global_batch:
                distiller.gather_local_batch = gather_with_grad
        logger.info(f"WCoRD layer pairs (teacher, student) into hidden_states: {self.layer_pairs}")
        report_store_size(distiller)
        return distiller

    def _open_teacher_cache(self, directory: str) -> TeacherCache:
        """Reuse or build the teacher-output cache for this training set, teacher, layer map and pooling."""
        column = self.args.index_column
        check_cacheable(self.train_dataset, column)
        teacher_layers = [t for t, _ in self.layer_pairs]
        pooling = self._pooling()
        show_progress = not self.args.disable_tqdm and self.is_local_process_zero()
        fingerprint = {
            "teacher": model_fingerprint(self.accelerator.unwrap_model(self.teacher_model)),
            "teacher_layers": teacher_layers,
            "pooling": pooling,
            "data": dataset_fingerprint(self.train_dataset, show_progress=show_progress, index_column=column),
            "num_examples": len(self.train_dataset),
        }
        collator = self._get_collator_with_removed_columns(self.data_collator, "training")

        def build() -> TeacherCache:
            return build_teacher_cache(
                directory,
                self.teacher_model,
                self.train_dataset,
                collator,
                self._prepare_inputs,
                teacher_layers,
                pooling,
                fingerprint,
                column,
                self.args.per_device_eval_batch_size,
                show_progress,
            )

        if not self.accelerator.is_main_process:
            logger.info(f"Process {self.args.process_index} waits for the main process to open the teacher cache.")
        with self.accelerator.main_process_first():
            return open_or_build_teacher_cache(directory, fingerprint, build)

    def _pooling(self) -> str:
        return "mean" if self.args.pooling == "auto" else self.args.pooling

    def _teacher_features(self, states: tuple[torch.Tensor, ...], mask: torch.Tensor | None) -> list[torch.Tensor]:
        return pooled_features(states, [t for t, _ in self.layer_pairs], mask, self._pooling())

    def _student_features(self, states: tuple[torch.Tensor, ...], mask: torch.Tensor | None) -> list[torch.Tensor]:
        return pooled_features(states, [s for _, s in self.layer_pairs], mask, self._pooling())

    def verify_distiller_sync(self) -> None:
        """Check that every process holds the same projection heads and memory banks (or queues); raise if not.

        Runs at the end of `train()`; a no-op with one process.
        """
        if self.distiller is None or self.accelerator.num_processes == 1:
            return
        digests = self.accelerator.gather(state_digest(self.distiller)[None])
        check_ranks_agree(digests)
        logger.info(f"WCoRD heads and negative stores agree across {self.accelerator.num_processes} processes.")

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        """[`~transformers.Trainer.train`], resuming only from complete checkpoints, then [`verify_distiller_sync`]
        when running on several processes.

        `resume_from_checkpoint=True` picks the latest checkpoint in `output_dir` whose save finished (a run killed
        while saving leaves one without `trainer_state.json`); an explicit path to an incomplete one is refused.
        """
        self.head_optimizer = None
        if resume_from_checkpoint is True:
            required = (DISTILLER_STATE_NAME,) if self.distiller is not None else ()
            if self.distiller is not None and self._shards_the_student():
                required += (HEAD_OPTIMIZER_NAME,)
            resume_from_checkpoint = latest_complete_checkpoint(self.args.output_dir, required)
            if resume_from_checkpoint is None:
                raise ValueError(
                    f"`resume_from_checkpoint=True` but {self.args.output_dir} holds no complete checkpoint: start "
                    "without it, or pass the path of a checkpoint folder."
                )
        elif isinstance(resume_from_checkpoint, str) and os.path.isdir(resume_from_checkpoint):
            missing = missing_checkpoint_files(resume_from_checkpoint)
            if missing:
                raise ValueError(
                    f"{resume_from_checkpoint} is incomplete (it lacks {missing}): its save was interrupted. Resume "
                    "from an earlier checkpoint, or pass `resume_from_checkpoint=True` for the latest complete one."
                )
        warm = self.distiller is not None and self.distiller.uses_bank and self.args.warm_negatives
        if warm and not resume_from_checkpoint:
            self.warm_negative_stores()
            self.distiller.fit_standardizers()
            self.warm_up_critic()
        output = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        self.verify_distiller_sync()
        return output

    def warm_negative_stores(self) -> None:
        """Fill every memory-bank slot with its example's embedding (a no-gradient pass over the training set, in
        order; the teacher's outputs come from the teacher cache when there is one). Runs at the start of `train()`
        unless it resumes from a checkpoint, which holds the bank."""
        batches = self._get_dataloader(
            self.train_dataset,
            "Memory-bank warm-up",
            self.args.eval_batch_size,
            sampler_fn=torch.utils.data.SequentialSampler,
        )
        student = self.model
        was_training = student.training
        student.eval()

        def features(
            inputs: dict[str, Any], index: torch.Tensor, labels: torch.Tensor | None
        ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor | None]:
            student_outputs = student(**student_inputs(inputs), output_hidden_states=True)
            teacher_outputs = self._teacher_outputs(inputs, index, output_device(student_outputs), True)
            teacher_features, student_features = self._pooled_features(inputs, student_outputs, teacher_outputs)
            negative_labels = self._labels_for_negatives(labels, getattr(teacher_outputs, "logits", None))
            return teacher_features, student_features, negative_labels

        with gathered_parameters(student):  # whole under ZeRO-3 (the student is prepared later, in the loop)
            warm_negative_stores(
                self.distiller,
                batches,
                features,
                self.args.index_column,
                disable_progress=self.args.disable_tqdm or not self.is_local_process_zero(),
            )
        student.train(was_training)

    def warm_up_critic(self) -> None:
        """Train the heads alone on the filled feature bank for `critic_warmup_steps` steps (see
        [`~hf_wcord.critic_warmup.warm_up_critic`]); what the critic then knows is logged and goes into the first
        training log as `wcord/critic_warmup_*`."""
        steps = self.args.critic_warmup_steps
        if steps == 0 or self.distiller is None or not self.distiller.compute_global:
            return
        if not can_warm_up_critic(self.distiller):
            logger.warning(
                "`critic_warmup_steps` is set, but the critic warm-up trains on a memory bank of features "
                "(`bank_content='features'` with the index column, global objective 'infonce' or 'dual'): skipped."
            )
            return
        started = time.perf_counter()
        report = warm_up_critic(
            self.distiller,
            steps,
            self.args.per_device_train_batch_size * self.accelerator.num_processes,
            self.args.critic_warmup_learning_rate,
            self.args.seed,
        )
        report["seconds"] = time.perf_counter() - started
        self.critic_warmup_report = {f"wcord/critic_warmup_{name}": value for name, value in report.items()}
        if self.distiller.critic_gate is not None:
            self.distiller.critic_gate.start(report)
        logger.info(f"WCoRD critic after {steps} warm-up steps: {report}")

    def _get_train_sampler(self, train_dataset: Any | None = None) -> torch.utils.data.Sampler | None:
        """The Trainer's sampler; with `labelled_batch_share` and a training set of labelled and unlabeled rows, a
        [`LabelledShareSampler`] that gives every batch its share of labelled rows."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        sampler = labelled_share_sampler(dataset, self.training_rows, self.args, self.task)
        return sampler if sampler is not None else super()._get_train_sampler(train_dataset)

    # ---- Optimisation ----

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer, plus a parameter group for the projection heads (`head_learning_rate`).

        Where the student's optimizer is sharded (FSDP, DeepSpeed) the heads get an optimizer and schedule of their
        own instead (`self.head_optimizer`, stepped with the student's): a ZeRO optimizer holds the parameters of
        DeepSpeed's engine alone, Accelerate's FSDP 2 preparation maps every parameter of the optimizer onto the
        sharded student's, and FSDP's optimizer checkpoints name each parameter by its place in the student."""
        optimizer = super().create_optimizer(model)
        if self.distiller is None:
            return optimizer
        if self._shards_the_student():
            if self.head_optimizer is None:
                self.head_optimizer = SeparateHeadOptimizer(
                    self.distiller, self.args, self.state.max_steps, self.optimizer_cls_and_kwargs
                )
        else:
            add_head_parameter_group(optimizer, self.distiller, self.args.head_learning_rate)
        return optimizer

    def _shards_the_student(self) -> bool:
        return self.is_deepspeed_enabled or self.is_fsdp_enabled

    def _clip_grad_norm(self, model: nn.Module) -> Any:
        """Clip the student's gradients as the Trainer does, and the heads' gradients to the same `max_grad_norm`
        (a norm of their own, so that the student's clipping is the same with or without the heads)."""
        norm = super()._clip_grad_norm(model)
        if self.distiller is not None:
            torch.nn.utils.clip_grad_norm_(self.distiller.parameters(), self.args.max_grad_norm)
        return norm

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.distiller is not None and self.accelerator.num_processes > 1 and self.accelerator.sync_gradients:
            average_gradients(self.distiller, self.accelerator)
        return loss

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        index = inputs.pop(self.args.index_column, None)
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        needs_hidden_states = self.distiller is not None
        if self.args.alpha_ce > 0 and "labels" not in inputs:
            raise ValueError(
                "`alpha_ce > 0` needs labels, but the batch has no `labels`: add a label column, or set "
                "`alpha_ce=0` to distill on unlabeled data."
            )
        if self.args.check_finite:
            self._check_finite_inputs(inputs, index)
        forward_inputs = student_inputs(inputs)
        if "labels" in inputs and not bool(labelled_mask(inputs["labels"], self.task).all()):
            del forward_inputs["labels"]  # the task loss reads the labelled rows only (compute_loss_terms)
        student_outputs = model(**forward_inputs, output_hidden_states=needs_hidden_states)
        teacher_outputs = self._teacher_outputs(inputs, index, output_device(student_outputs), needs_hidden_states)
        terms = self.compute_loss_terms(inputs, student_outputs, teacher_outputs, index)
        weights = self.loss_weights
        loss = sum(weights.get(name, 1.0) * value for name, value in terms.items())
        if self.args.check_finite and not torch.isfinite(loss):
            bad = {name: value.item() for name, value in terms.items() if not torch.isfinite(value)}
            raise FloatingPointError(
                f"The {', '.join(bad) or 'total'} loss term became non-finite ({bad}) at step "
                f"{self.state.global_step}: check the inputs for NaN/inf, lower the learning rate, or train in "
                "bf16/fp32 instead of fp16."
            )
        for name, value in terms.items():
            self._term_totals[name] += value.detach().float()
            self._term_counts[name] += 1
        if self.distiller is not None:
            for name, value in self.distiller.diagnostics.items():
                self._diagnostic_totals[name] += value
                self._diagnostic_counts[name] += 1
        return (loss, student_outputs) if return_outputs else loss

    def _check_finite_inputs(self, inputs: dict[str, Any], index: torch.Tensor | None) -> None:
        """Refuse NaN or infinite inputs, naming the columns; a NaN target is accepted only in a transfer row
        (appended from `transfer_dataset`), where it marks the row unlabeled: in the training rows themselves a
        missing regression target is ambiguous."""
        bad = [
            name
            for name, value in inputs.items()
            if isinstance(value, torch.Tensor)
            and value.is_floating_point()
            and not torch.isfinite(value).all()
            and not (name == "labels" and self._only_transfer_rows_lack_targets(value, index))
        ]
        if bad:
            raise ValueError(
                f"The training batch at step {self.state.global_step} holds NaN or infinite values in {bad}: clean "
                "the dataset (e.g. `dataset.filter`) or fix the preprocessing that produced them."
            )

    def _only_transfer_rows_lack_targets(self, labels: torch.Tensor, index: torch.Tensor | None) -> bool:
        if self.transfer_start is None or index is None:
            return False
        missing = ~torch.isfinite(labels.view(labels.shape[0], -1)).all(dim=1)
        return bool((index.to(labels.device)[missing] >= self.transfer_start).all())

    def compute_loss_terms(
        self,
        inputs: dict[str, Any],
        student_outputs: Any,
        teacher_outputs: Any,
        index: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """The unweighted loss terms of one training batch: `ce`, `kd`, `global`, `local` (those enabled). `ce` is
        the task loss over the batch's labelled rows, absent when it has none.

        Override to add terms; each is weighted by `loss_weights.get(name, 1.0)` and logged as `loss_<name>`.
        """
        terms: dict[str, torch.Tensor] = {}
        labels = inputs.get("labels")
        if self.args.alpha_ce > 0:
            if student_outputs.loss is not None:
                terms["ce"] = student_outputs.loss.float()
            else:
                mask = labelled_mask(labels, self.task)
                task_loss = labelled_task_loss(student_outputs.logits, labels, mask, self.task)
                if task_loss is not None:
                    terms["ce"] = task_loss
        if self.args.alpha_kd > 0:
            if self.is_regression:
                terms["kd"] = regression_kd_loss(student_outputs.logits, teacher_outputs.logits)
            else:
                terms["kd"] = kd_loss(student_outputs.logits, teacher_outputs.logits, self.args.kd_temperature)
        if self.distiller is not None:
            teacher_features, student_features = self._pooled_features(inputs, student_outputs, teacher_outputs)
            negative_labels = self._labels_for_negatives(labels, getattr(teacher_outputs, "logits", None))
            terms.update(self.distiller(teacher_features, student_features, index, negative_labels))
        return terms

    def _labels_for_negatives(
        self, labels: torch.Tensor | None, teacher_logits: torch.Tensor | None
    ) -> torch.Tensor | None:
        """The class each row is recorded under for label-aware negatives (see `unlabeled_negative_labels`)."""
        if labels is None or not self.args.label_aware_negatives:
            return labels
        mask = labelled_mask(labels, self.task)
        return labels_for_negatives(labels, mask, teacher_logits, self.args.unlabeled_negative_labels)

    def _teacher_outputs(
        self,
        inputs: dict[str, Any],
        index: torch.Tensor | None,
        device: torch.device,
        output_hidden_states: bool,
    ) -> Any:
        """The teacher's outputs for a batch: read from the teacher cache by index, or a no-gradient forward."""
        if self.teacher_cache is not None:
            if index is None:
                raise ValueError(
                    f"The teacher cache is read by example index, but the batch has no {self.args.index_column!r}."
                )
            return self.teacher_cache.lookup(index, device)
        with torch.no_grad():
            return self.teacher_model(**teacher_inputs(inputs), output_hidden_states=output_hidden_states)

    def _pooled_features(
        self, inputs: dict[str, Any], student_outputs: Any, teacher_outputs: Any
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The pooled features of the mapped layers, teacher's (from the cache or the hidden states) and student's,
        each pooled with its own attention mask."""
        if isinstance(teacher_outputs, CachedTeacherOutputs):
            teacher_features = teacher_outputs.features
        else:
            teacher_mask = teacher_inputs(inputs).get("attention_mask")
            teacher_features = self._teacher_features(get_hidden_states(teacher_outputs, "teacher"), teacher_mask)
        student_states = get_hidden_states(student_outputs, "student")
        return teacher_features, self._student_features(student_states, inputs.get("attention_mask"))

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        inputs = {name: value for name, value in student_inputs(inputs).items() if name != self.args.index_column}
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    # ---- Logging ----

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each loss term since the last training log (`loss_ce`, `loss_kd`, ...) and of the
        distiller's diagnostics (`wcord/teacher_anchored_accuracy`, `wcord/critic_lipschitz_ratio`, ...; see
        [`WCoRDDistiller`]), and, in the first training log, what the critic knew after its warm-up."""
        if "loss" in logs and self._term_counts:
            for name, total in self._term_totals.items():
                mean = self.accelerator.reduce(total / self._term_counts[name], reduction="mean")
                logs[f"loss_{name}"] = round(mean.item(), 6)
            for name, total in self._diagnostic_totals.items():
                mean = self.accelerator.reduce(total / self._diagnostic_counts[name], reduction="mean")
                logs[f"wcord/{name}"] = round(mean.item(), 6)
            logs.update(self.critic_warmup_report)
            self.critic_warmup_report = {}
            self._term_totals.clear()
            self._term_counts.clear()
            self._diagnostic_totals.clear()
            self._diagnostic_counts.clear()
        super().log(logs, start_time)

    # ---- Checkpoints and the saved student ----

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.distiller is not None and self.args.should_save:
            save_distiller_state(self.distiller, self.layer_pairs, output_dir)
            if self.head_optimizer is not None:
                self.head_optimizer.save(output_dir)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None and self.distiller is not None:
            load_distiller_state(self.distiller, checkpoint)
            if self.head_optimizer is not None and not self.head_optimizer.load(checkpoint):
                logger.warning(
                    f"{checkpoint} holds no {HEAD_OPTIMIZER_NAME}: the heads' optimizer and schedule start afresh."
                )

    def _latest_eval_results(self) -> dict[str, float]:
        for entry in reversed(self.state.log_history):
            results = {k: v for k, v in entry.items() if k.startswith("eval_") and isinstance(v, (int, float))}
            if results:
                return results
        return {}

    def _write_model_card(self, output_dir: str, model_name: str | None = None) -> None:
        resolved = {"num_negatives": self.distiller.num_negatives} if self.distiller is not None else {}
        card = render_model_card(
            self.accelerator.unwrap_model(self.model),
            self.accelerator.unwrap_model(self.teacher_model),
            self.args,
            self._latest_eval_results(),
            model_name,
            info=self.model_card_info,
            resolved_settings=resolved,
            tokenizer=self.processing_class,
            teacher_tokenizer=self.teacher_processing_class,
            training_rows=self.training_rows,
        )
        with open(os.path.join(output_dir, CARD_NAME), "w", encoding="utf-8") as handle:
            handle.write(card)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the student alone (weights, config, processor) and its model card."""
        output_dir = output_dir or self.args.output_dir
        super().save_model(output_dir, _internal_call=_internal_call)
        if self.args.should_save:
            self._write_model_card(output_dir)

    def create_model_card(
        self,
        language: str | list[str] | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write the distillation model card into `output_dir`. `push_to_hub` calls it with its keyword arguments,
        as for `Trainer`: `language`, `license`, `tags`, `finetuned_from` (the student's starting checkpoint),
        `dataset_tags` or `dataset` (a Hub dataset id) and `dataset_args` (its configuration, e.g. `"sst2"`). What is
        given is remembered in `model_card_info` for later cards; `tasks` is taken from the student's class."""
        self.model_card_info = self.model_card_info.updated(
            language=language,
            license=license,
            tags=tags,
            base_model=finetuned_from,
            dataset=dataset_tags or dataset,
            dataset_config=dataset_args,
        )
        if self.is_world_process_zero():
            os.makedirs(self.args.output_dir, exist_ok=True)
            self._write_model_card(self.args.output_dir, model_name)
