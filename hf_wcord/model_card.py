"""The model card written next to a distilled student: teacher, method, loss weights and evaluation results."""

from __future__ import annotations

from typing import Any

from .config import WCoRDConfig

CARD_NAME = "README.md"
_NOT_SCORES = ("_runtime", "_per_second", "_samples", "epoch")


def _model_name(model: Any) -> str:
    return getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__


def _is_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and not name.endswith("/")


def _parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def render_model_card(
    student: Any,
    teacher: Any,
    args: WCoRDConfig,
    eval_results: dict[str, float] | None = None,
    model_name: str | None = None,
    dataset: str | None = None,
    task: str | None = None,
    resolved_settings: dict[str, Any] | None = None,
) -> str:
    """Markdown model card (with Hub YAML metadata) for a student distilled with WCoRD.

    Args:
        dataset: the training data, e.g. a Hub dataset id (`nyu-mll/glue`) or a folder.
        task: the task within it, e.g. `sst2`.
        resolved_settings: values that replace the config's in the settings table (such as the number of negatives
            actually used when the config left it to be chosen).
    """
    teacher_name = _model_name(teacher)
    lines = [
        "---",
        "library_name: transformers",
        "tags:",
        "- knowledge-distillation",
        "- wcord",
        "- hf_wcord",
    ]
    if teacher_name and _is_hub_id(teacher_name):
        lines += ["base_model:", f"- {teacher_name}"]
    if dataset and _is_hub_id(dataset):
        lines += ["datasets:", f"- {dataset}"]
    trained_on = f" on {dataset}{f' ({task})' if task else ''}" if dataset else ""
    lines += [
        "---",
        "",
        f"# {model_name or args.hub_model_id or 'Distilled student'}",
        "",
        f"This model was distilled from **{teacher_name}**{trained_on} with Wasserstein Contrastive Representation "
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
    values = {name: getattr(args, name) for name in settings} | (resolved_settings or {})
    lines += [f"| {name} | {value} |" for name, value in values.items()]
    scores = {name: value for name, value in (eval_results or {}).items() if not name.endswith(_NOT_SCORES)}
    if scores:
        lines += ["", "## Evaluation results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in sorted(scores.items())]
    lines += [
        "",
        "The teacher, the projection heads and the memory bank were used for training only; this repository holds "
        "the student alone, loadable with the `transformers` Auto classes.",
        "",
    ]
    return "\n".join(lines)
