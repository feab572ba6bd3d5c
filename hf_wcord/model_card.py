"""The model card written next to a distilled student, built with `huggingface_hub`'s `ModelCardData`: Hub
metadata (base model, datasets, tags, license, a model-index with the run's evaluation results), the teacher, the
distillation settings, framework versions and the WCoRD citation.

Local folders and files never reach the card: a teacher, student or dataset read from disk is named by its
architecture or task, and only Hub ids go into the metadata.
"""

from __future__ import annotations

import dataclasses
import os
import re
from importlib import metadata
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .config import WCoRDConfig

CARD_NAME = "README.md"
BASE_TAGS = ("distillation", "knowledge-distillation", "wcord", "hf_wcord")
FRAMEWORKS = ("hf_wcord", "transformers", "torch", "datasets", "accelerate", "huggingface_hub")
_NOT_SCORES = ("_runtime", "_per_second", "_samples", "epoch", "_loss")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_FILE_SUFFIXES = (
    ".csv",
    ".tsv",
    ".json",
    ".jsonl",
    ".txt",
    ".parquet",
    ".arrow",
    ".gz",
    ".zip",
    ".bin",
    ".safetensors",
)
_SETTINGS = (
    "alpha_ce",
    "alpha_kd",
    "kd_temperature",
    "lambda_global",
    "lambda_local",
    "layer_map",
    "pooling",
    "feat_dim",
    "lipschitz",
    "standardize_statistics",
    "global_objective",
    "contrast_temperature",
    "num_negatives",
    "negatives_source",
    "warm_negatives",
    "bank_content",
    "student_negatives",
    "critic_warmup_steps",
    "critic_gate",
    "representation_warmup_ratio",
    "labelled_batch_share",
    "sinkhorn_eps",
    "sinkhorn_backend",
    "learning_rate",
    "per_device_train_batch_size",
    "num_train_epochs",
    "max_steps",
    "seed",
)
CITATION = """@inproceedings{chen2021wasserstein,
  title     = {Wasserstein Contrastive Representation Distillation},
  author    = {Chen, Liqun and Wang, Dong and Gan, Zhe and Liu, Jingjing and Henao, Ricardo and Carin, Lawrence},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2021}
}"""


@dataclasses.dataclass
class ModelCardInfo:
    """What the card says about where the student came from; `None` leaves a field out.

    Args:
        dataset: the training data as a Hub dataset id (`"nyu-mll/glue"`); anything else (a folder, a file) is not
            written to the card, where the data are then named by `dataset_config`.
        dataset_config: the configuration or task within the dataset (`"sst2"`).
        transfer_dataset: the unlabeled transfer data the student also trained on, as a Hub dataset id (written to
            the card's `datasets` beside `dataset`; anything else is left out).
        base_model: the student's starting checkpoint as a Hub id (the model it was initialised from; for a student
            made from teacher layers, the teacher). `""` for none (a random init); left `None`, the student's own
            `name_or_path` is used when it is a Hub id. A local folder is never written.
        language, license, tags: Hub metadata; `tags` are added to the library's own.
        pipeline_tag, library_name: override the card's task (default: from the student's class) and library
            (default: transformers), e.g. `sentence-similarity` and `sentence-transformers` for an embedding model.
    """

    dataset: str | None = None
    dataset_config: str | None = None
    transfer_dataset: str | None = None
    base_model: str | None = None
    language: str | list[str] | None = None
    license: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    pipeline_tag: str | None = None
    library_name: str | None = None

    def updated(self, **values: str | list[str] | None) -> ModelCardInfo:
        """A copy with the given fields replaced where they are set and the given `tags` added. `dataset`,
        `dataset_config` and `base_model` take the first item of a list (as `Trainer` passes `dataset_tags`,
        `dataset_args` and `finetuned_from`)."""
        tags = values.pop("tags", None) or []
        for name in ("dataset", "dataset_config", "base_model"):
            if isinstance(values.get(name), list):
                values[name] = values[name][0] if values[name] else None
        info = dataclasses.replace(self, **{name: value for name, value in values.items() if value})
        info.tags = list(dict.fromkeys([*self.tags, *([tags] if isinstance(tags, str) else tags)]))
        return info


def is_hub_id(name: str | None) -> bool:
    """Whether `name` reads as a Hub repository id (`name` or `namespace/name`), not a local path or a data file."""
    return (
        bool(name)
        and _HUB_ID.match(name) is not None
        and not name.lower().endswith(_FILE_SUFFIXES)
        and not os.path.exists(name)
    )


def _hub_id_or_none(name: str | None) -> str | None:
    return name if is_hub_id(name) else None


def _name_or_path(model: Any) -> str | None:
    """Where the model's config says it was loaded from (a Hub id or a local folder)."""
    return getattr(getattr(model, "config", None), "_name_or_path", None)


def _parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_count(model: Any) -> int | None:
    config = getattr(model, "config", None)
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    depths = getattr(config, "depths", None)
    return sum(depths) if isinstance(depths, (list, tuple)) else None


def _size(model: Any) -> str:
    layers = _layer_count(model)
    return f"{f'{layers} layers, ' if layers else ''}{_parameter_count(model) / 1e6:.1f}M parameters"


def describe_model(model: Any) -> str:
    """A model named by its Hub id, or, when it was read from disk or built in code, by its architecture."""
    hub_id = _hub_id_or_none(_name_or_path(model))
    if hub_id:
        return f"[{hub_id}](https://huggingface.co/{hub_id}) ({_size(model)})"
    return f"{type(model).__name__} ({_size(model)})"


def describe_tokenizer(tokenizer: Any) -> str:
    """A tokenizer named by its Hub id when it has one, else by its class, with its vocabulary size."""
    hub_id = _hub_id_or_none(getattr(tokenizer, "name_or_path", None))
    name = f"[{hub_id}](https://huggingface.co/{hub_id})" if hub_id else type(tokenizer).__name__
    return f"{name}, {len(tokenizer):,} tokens"


def pipeline_tag(model: Any) -> str | None:
    """The Hub pipeline tag of a classification model, from its class name."""
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return "text-classification"
    if name.endswith("ForImageClassification"):
        return "image-classification"
    return None


def scores(eval_results: dict[str, float] | None) -> dict[str, float]:
    """The metrics among `eval_*` results (runtimes, throughputs, the loss and the epoch left out), unprefixed."""
    return {
        name.removeprefix("eval_"): float(value)
        for name, value in (eval_results or {}).items()
        if not name.endswith(_NOT_SCORES) and isinstance(value, (int, float))
    }


def framework_versions() -> dict[str, str]:
    """Installed versions of the libraries that produced the model."""
    versions = {}
    for name in FRAMEWORKS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def card_data(
    student: Any, teacher: Any, model_name: str, info: ModelCardInfo, eval_results: dict[str, float] | None
) -> ModelCardData:
    """The card's YAML metadata: only Hub ids for models and datasets, a model-index when there are results."""
    dataset = _hub_id_or_none(info.dataset)
    task_type = info.pipeline_tag or pipeline_tag(student)
    base_model = info.base_model if info.base_model is not None else _name_or_path(student)
    results = [
        EvalResult(
            task_type=task_type or "other",
            dataset_type=dataset or info.dataset_config or "custom",
            dataset_name=info.dataset_config or dataset or "custom",
            dataset_config=info.dataset_config if dataset else None,
            metric_type=metric,
            metric_name=metric,
            metric_value=round(value, 4),
        )
        for metric, value in scores(eval_results).items()
    ]
    tags = list(dict.fromkeys([*BASE_TAGS, *info.tags]))
    teacher_id = _hub_id_or_none(_name_or_path(teacher))
    datasets = list(dict.fromkeys(name for name in (dataset, _hub_id_or_none(info.transfer_dataset)) if name))
    return ModelCardData(
        model_name=model_name,
        base_model=_hub_id_or_none(base_model),
        datasets=datasets or None,
        language=info.language,
        license=info.license,
        library_name=info.library_name or "transformers",
        pipeline_tag=task_type,
        tags=tags,
        metrics=sorted({metric for metric in scores(eval_results)}) or None,
        eval_results=results or None,
        distillation={"method": "WCoRD", "teacher": teacher_id} if teacher_id else {"method": "WCoRD"},
    )


def _data_description(info: ModelCardInfo) -> str:
    dataset = _hub_id_or_none(info.dataset)
    if dataset:
        where = f"[{dataset}](https://huggingface.co/datasets/{dataset})"
        return f" on {where} ({info.dataset_config})" if info.dataset_config else f" on {where}"
    return f" on {info.dataset_config} data" if info.dataset_config else ""


def _rows_description(info: ModelCardInfo, training_rows: tuple[int, int] | None) -> list[str]:
    """The line on how many labelled and unlabeled rows the student trained on (none when unknown)."""
    if training_rows is None:
        return []
    labelled, unlabeled = training_rows
    if labelled == 0:
        return [f"Training rows: {unlabeled:,}, all without labels.", ""]
    transfer = _hub_id_or_none(info.transfer_dataset)
    source = f" (transfer data: [{transfer}](https://huggingface.co/datasets/{transfer}))" if transfer else ""
    return [
        f"Training rows: {labelled:,} labelled and {unlabeled:,} unlabeled{source}; the task loss read the labelled "
        "rows, the distillation terms every row.",
        "",
    ]


def _usage(info: ModelCardInfo) -> list[str]:
    """How to load a sentence-transformers student."""
    if info.library_name != "sentence-transformers":
        return []
    return [
        "As a sentence encoder:",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        'model = SentenceTransformer("path/or/hub-id")',
        'embeddings = model.encode(["A sentence.", "Another one."])',
        "```",
        "",
    ]


def render_model_card(
    student: Any,
    teacher: Any,
    args: WCoRDConfig,
    eval_results: dict[str, float] | None = None,
    model_name: str | None = None,
    info: ModelCardInfo | None = None,
    resolved_settings: dict[str, Any] | None = None,
    tokenizer: Any | None = None,
    teacher_tokenizer: Any | None = None,
    training_rows: tuple[int, int] | None = None,
) -> str:
    """The model card (YAML front matter and Markdown) of a student distilled with WCoRD.

    Args:
        model_name: the card's title (default: the Hub repository's name, else the output folder's name).
        info: data set, base model and Hub metadata (see `ModelCardInfo`).
        resolved_settings: values that replace the config's in the settings table (such as the number of negatives
            actually used when the config left it to be chosen).
        tokenizer, teacher_tokenizer: the student's tokenizer and, when the teacher had its own, the teacher's;
            both are named in the card.
        training_rows: how many labelled and unlabeled rows the student trained on.
    """
    info = info or ModelCardInfo()
    name = model_name or (args.hub_model_id or os.path.basename(os.path.normpath(args.output_dir))).split("/")[-1]
    data = card_data(student, teacher, name, info, eval_results)
    started = (
        f", initialised from [{data.base_model}](https://huggingface.co/{data.base_model})" if data.base_model else ""
    )
    lines = [
        f"# {name}",
        "",
        f"This model was distilled from {describe_model(teacher)}{_data_description(info)} with Wasserstein "
        "Contrastive Representation Distillation (WCoRD, Chen et al., CVPR 2021) using `hf_wcord`. The student: "
        f"{type(student).__name__} ({_size(student)}){started}.",
        "",
        "## Distillation",
        "",
        "| | model | parameters |",
        "|---|---|---|",
        f"| teacher | {describe_model(teacher)} | {_parameter_count(teacher):,} |",
        f"| student | {type(student).__name__} | {_parameter_count(student):,} |",
        "",
    ]
    lines += _rows_description(info, training_rows)
    if teacher_tokenizer is not None and tokenizer is not None:
        lines += [
            "Each model read its own tokenization of the same text: the teacher "
            f"{describe_tokenizer(teacher_tokenizer)}; the student {describe_tokenizer(tokenizer)}, saved with it.",
            "",
        ]
    lines += [
        "Objective: L = alpha_ce * CE + alpha_kd * T^2 * KL(teacher || student) + lambda_global * L_global "
        "(Wasserstein dual, contrastive, with a Lipschitz critic) + lambda_local * L_local (in-batch Sinkhorn OT).",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    values = {setting: getattr(args, setting) for setting in _SETTINGS} | (resolved_settings or {})
    lines += [f"| {setting} | {value} |" for setting, value in values.items()]
    measured = scores(eval_results)
    if measured:
        lines += ["", "## Evaluation results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {metric} | {value:.4f} |" for metric, value in sorted(measured.items())]
    lines += [
        "",
        "The teacher, the projection heads and the memory bank were used for training only; this repository holds "
        "the student alone, loadable with the `transformers` Auto classes.",
        "",
        *_usage(info),
        "## Framework versions",
        "",
        *[f"- {library} {version}" for library, version in framework_versions().items()],
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))
