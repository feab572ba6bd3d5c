"""The methods compared, the candidates each is tuned over, and one student run.

Every method of a cell trains with the same data, steps, schedule and learning rate (chosen for CE alone), and
every tuned method gets the same number of candidates (two, the first being its default), chosen on the held-out
split with a selection seed that no reported run uses.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from cells import TEXT_TASKS, Budget, common_arguments, make_student

SELECTION_SEED = 100
REPORTED_SEEDS = (0, 1, 2)

KD_ONLY = {"lambda_global": 0.0, "lambda_local": 0.0}
# CRD as RepDistiller runs it: Linear + L2 normalisation of the raw last feature (no standardiser), NCE with the
# bank's positives, a cold bank of embeddings with momentum 0.5, K = 16,384 or N - 1, tau 0.07, weight 0.8 on the two
# directions summed, no ramp.
CRD = {
    "global_objective": "nce",
    "lipschitz": "none",
    "standardize_features": False,
    "bank_content": "embeddings",
    "warm_negatives": False,
    "critic_warmup_steps": 0,
    "representation_warmup_ratio": 0.0,
    "lambda_global": 0.8,
    "lambda_local": 0.0,
    "student_negatives": "bank",
}
# Final methods: their fixed settings. "crd-infonce+kd" is v0.2's stand-in for CRD (CRD's head and a cold bank of
# embeddings with WCoRD's InfoNCE on fresh positives); it is not RepDistiller's NCE loss with bank positives.
METHODS: dict[str, dict[str, Any]] = {
    "ce": {"alpha_kd": 0.0, **KD_ONLY},
    "kd": dict(KD_ONLY),
    "crd+kd": CRD,
    "crd-infonce+kd": {
        "lambda_global": 0.8,
        "lambda_local": 0.0,
        "lipschitz": "none",
        "warm_negatives": False,
        "bank_content": "embeddings",
        "critic_warmup_steps": 0,
        "standardize_statistics": "batch",
        "student_negatives": "bank",
    },
    "wcord+kd": {},
    "wcord+kd tuned": {},
    # Ablations: the defaults with one fix undone. The stale bank stores the heads' embeddings (v0.2's bank), which
    # also turns the critic warm-up off (it trains on stored features): compare it with "no critic warm-up".
    "wcord+kd, no critic warm-up": {"critic_warmup_steps": 0},
    "wcord+kd, stale bank": {"bank_content": "embeddings"},
    "wcord+kd, batch statistics": {"standardize_statistics": "batch"},
    "wcord+kd, v0.2 weights": {"lambda_global": 0.8, "lambda_local": 0.1},
    # The global weight the longer-budget grid (`run_defaults_grid.py --cells layers3-1000-x4 narrow-1000-x4`) chose.
    "wcord+kd, global 0.2": {"lambda_global": 0.2},
    # That weight behind the critic gate: the student feels the global term in proportion to the critic's measured
    # contrastive accuracy (pretrained students' critics know the task, random-init students' barely do).
    "wcord+kd, critic gate, global 0.2": {"lambda_global": 0.2, "critic_gate": True},
    # Which term does what: each of the two terms alone on top of KD, at its default weight.
    "kd+global": {"lambda_local": 0.0},
    "kd+local": {"lambda_global": 0.0},
    "wcord+kd, crd head": {"lipschitz": "none"},
    "wcord+kd, cold bank": {"warm_negatives": False},
    "wcord+kd, cls/uniform": {"layer_map": "uniform", "pooling": "first"},
    "wcord+kd, no ramp": {"representation_warmup_ratio": 0.0},
    # The teacher-anchored direction's negatives, each kind (the default's entry is the defaults themselves).
    "wcord+kd, bank student negatives": {"student_negatives": "bank"},
    "wcord+kd, batch student negatives": {"student_negatives": "batch"},
    "wcord+kd, no student negatives": {"student_negatives": "none"},
    # Not a fix undone but the large-data option: a FIFO queue of 1,024 recent embeddings (a quarter of SST-2's
    # and an eighth of Fashion-MNIST's training examples) instead of one bank slot per example.
    "wcord+kd, queue 1024": {"negatives_source": "queue", "num_negatives": 1024},
}
TEXT_ONLY = ("wcord+kd, cls/uniform",)
CURVE_METHODS = ("ce", "kd", "crd+kd", "wcord+kd")
QUICK_METHODS = ("ce", "kd", "wcord+kd", "wcord+kd tuned")
# The teacher comparison (MiniLM-L6 vs MPNet teacher, the same pretrained MiniLM student) runs the main three.
TEACHER_COMPARISON_STUDENTS = ("minilm3",)
TEACHER_COMPARISON_METHODS = ("ce", "kd", "wcord+kd")

KD_CANDIDATES = ({"alpha_kd": 1.0, "kd_temperature": 4.0}, {"alpha_kd": 0.25, "kd_temperature": 2.0})
CRD_CANDIDATES = ({"lambda_global": 0.8}, {"lambda_global": 0.2})
WCORD_CANDIDATES = ({"lambda_global": 0.8, "lambda_local": 0.1}, {"lambda_global": 0.2, "lambda_local": 0.5})
# Which methods are tuned, and whether they take KD's chosen settings.
TUNED: dict[str, tuple[tuple[dict[str, float], ...], bool]] = {
    "kd": (KD_CANDIDATES, False),
    "crd-infonce+kd": (CRD_CANDIDATES, True),
    "wcord+kd tuned": (WCORD_CANDIDATES, True),
}


def methods_for(task: str, student: str, quick: bool, chosen: list[str] | None) -> list[str]:
    names = chosen or (QUICK_METHODS if quick else METHODS)
    if student in TEACHER_COMPARISON_STUDENTS:
        names = [name for name in names if name in TEACHER_COMPARISON_METHODS]
    return [m for m in METHODS if m in names and not (task not in TEXT_TASKS and m in TEXT_ONLY)]


def cache_folder(root: str, task: str, student: str, settings: dict[str, Any]) -> str:
    """One teacher-cache folder per cell and feature set (runs without representation terms cache logits only)."""
    uses_features = settings.get("lambda_global", 0.8) > 0 or settings.get("lambda_local", 0.1) > 0
    features = f"{settings.get('layer_map', 'auto')}_{settings.get('pooling', 'auto')}" if uses_features else "logits"
    return os.path.join(root, f"{task}_{student}_{features}")


def majority_share(predictions: np.ndarray) -> float:
    """Share of the most frequent predicted class (1.0: the student predicts one class for everything)."""
    counts = np.bincount(predictions.argmax(axis=-1))
    return float(counts.max() / counts.sum())


def train_student(
    task: str,
    budget: Budget,
    splits: dict[str, Any],
    teacher: Any,
    student_name: str,
    settings: dict[str, Any],
    learning_rate: float,
    seed: int,
    cache_root: str,
    collator: Any,
) -> dict[str, Any]:
    """One seeded, deterministic student run; its held-out and reported accuracy, how often it predicts its most
    frequent class on the reported split, its training time, and its last training log's loss terms and critic
    diagnostics (means since the previous log: the bank's staleness, what the critic knows, ...)."""
    from hf_wcord import WCoRDConfig, WCoRDTrainer
    from hf_wcord.tasks.vision import accuracy_metrics

    student = make_student(task, student_name, teacher, seed)
    args = WCoRDConfig(
        num_train_epochs=budget.epochs,
        max_steps=budget.max_steps or -1,
        per_device_train_batch_size=budget.batch_size,
        learning_rate=learning_rate,
        warmup_steps=budget.warmup_ratio,
        data_seed=seed,
        **common_arguments(task, seed, "student_"),
        teacher_cache=cache_folder(cache_root, task, student_name, settings),
        remove_unused_columns=task in TEXT_TASKS,
        **settings,
    )
    trainer = WCoRDTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=splits["train"],
        data_collator=collator,
        compute_metrics=accuracy_metrics,
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    prediction = trainer.predict(splits["eval"])
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    diagnostics = {k: v for k, v in logged[-1].items() if k.startswith(("wcord/", "loss_"))} if logged else {}
    pool = {"pool": trainer.evaluate(splits["pool"])["eval_accuracy"]} if "pool" in splits else {}
    return {
        **pool,
        "heldout": trainer.evaluate(splits["heldout"])["eval_accuracy"],
        "eval": prediction.metrics["test_accuracy"],
        "eval_majority_share": majority_share(logits),
        "optimizer_steps": trainer.state.global_step,
        "train_seconds": seconds,
        "settings": settings,
        "learning_rate": learning_rate,
        "training_log": diagnostics,
    }


@dataclass
class CellRuns:
    """What every student run of one cell shares; `trainer(...)` is one run of it, to be called by a recorder."""

    task: str
    budget: Budget
    splits: dict[str, Any]
    teacher: Any
    student: str
    cache_root: str
    collator: Any

    def trainer(self, settings: dict[str, Any], learning_rate: float, seed: int) -> Callable[[], dict[str, Any]]:
        return functools.partial(
            train_student,
            self.task,
            self.budget,
            self.splits,
            self.teacher,
            self.student,
            settings,
            learning_rate,
            seed,
            self.cache_root,
            self.collator,
        )
