"""The model card written next to a distilled student: teacher, method, loss weights and evaluation results."""

from __future__ import annotations

from typing import Any

from .config import WCoRDConfig

CARD_NAME = "README.md"


def _model_name(model: Any) -> str:
    return getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__


def _parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def render_model_card(
    student: Any,
    teacher: Any,
    args: WCoRDConfig,
    eval_results: dict[str, float] | None = None,
    model_name: str | None = None,
) -> str:
    """Markdown model card (with Hub YAML metadata) for a student distilled with WCoRD."""
    teacher_name = _model_name(teacher)
    lines = [
        "---",
        "library_name: transformers",
        "tags:",
        "- knowledge-distillation",
        "- wcord",
        "- hf_wcord",
    ]
    if teacher_name and "/" in teacher_name and not teacher_name.startswith(("/", ".")):
        lines += ["base_model:", f"- {teacher_name}"]
    lines += [
        "---",
        "",
        f"# {model_name or args.hub_model_id or 'Distilled student'}",
        "",
        f"This model was distilled from **{teacher_name}** with Wasserstein Contrastive Representation "
        "Distillation (WCoRD, Chen et al., CVPR 2021) using `hf_wcord`.",
        "",
        "| | parameters |",
        "|---|---|",
        f"| teacher ({teacher_name}) | {_parameter_count(teacher):,} |",
        f"| student ({type(student).__name__}) | {_parameter_count(student):,} |",
        "",
        "## Distillation objective",
        "",
        "L = alpha_ce * CE + alpha_kd * T^2 * KL(teacher || student) + lambda_global * L_global (Wasserstein dual, "
        "contrastive) + lambda_local * L_local (in-batch Sinkhorn OT)",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    settings = (
        "alpha_ce",
        "alpha_kd",
        "kd_temperature",
        "lambda_global",
        "lambda_local",
        "layer_map",
        "pooling",
        "feat_dim",
        "lipschitz",
        "contrast_temperature",
        "num_negatives",
        "negatives_source",
        "sinkhorn_eps",
        "sinkhorn_backend",
        "learning_rate",
        "per_device_train_batch_size",
        "num_train_epochs",
        "max_steps",
        "seed",
    )
    lines += [f"| {name} | {getattr(args, name)} |" for name in settings]
    if eval_results:
        lines += ["", "## Evaluation results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in sorted(eval_results.items())]
    lines += [
        "",
        "The teacher, the projection heads and the memory bank were used for training only; this repository holds "
        "the student alone, loadable with the `transformers` Auto classes.",
        "",
    ]
    return "\n".join(lines)
