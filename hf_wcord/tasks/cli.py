"""Command-line plumbing shared by the example scripts: argument parsing (flags, or a YAML/JSON file with optional
flag overrides), logging setup, and TensorBoard as the default reporter when it is installed."""

from __future__ import annotations

import importlib.util
import json
import logging as std_logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import transformers
import yaml
from transformers import AutoTokenizer, HfArgumentParser, PreTrainedTokenizerBase, Trainer, TrainingArguments

CONFIG_FILE_EXTENSIONS = (".yaml", ".yml", ".json")


@dataclass(kw_only=True)
class HubLoadingArguments:
    """How models are fetched from the Hub (or read from folders); the scripts' model arguments extend it."""

    cache_dir: str | None = field(default=None, metadata={"help": "Where downloads from the Hub are cached."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of Hub models."})
    token: str | None = field(
        default=None,
        metadata={
            "help": (
                "Hub token for private or gated models and datasets (default: the one `hf auth login` stored, or "
                "$HF_TOKEN)."
            )
        },
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Allow custom modelling code from model repositories to run. Only for repos you trust."},
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={
            "help": (
                "Load a pretrained student whose classification head has another number of labels than the data: "
                "the head is re-initialised for the data's labels."
            )
        },
    )

    @property
    def hub_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `from_pretrained` (models, tokenizers, processors, configs)."""
        return {
            "cache_dir": self.cache_dir,
            "revision": self.model_revision,
            "token": self.token,
            "trust_remote_code": self.trust_remote_code,
        }


def _read_config_file(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        values = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of argument names to values, got {type(values).__name__}.")
    return values


def parse_arguments(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple[Any, ...]:
    """Parse `argv` (default: `sys.argv[1:]`) into one instance of each dataclass, like `run_glue.py`.

    The first argument may be a `.yaml`/`.json` file of `name: value` pairs; flags after it override its values.
    `report_to` defaults to TensorBoard when `tensorboard` is installed (`--report_to none` turns it off).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types)
    if importlib.util.find_spec("tensorboard") is not None:
        parser.set_defaults(report_to="tensorboard")
    if argv and argv[0].endswith(CONFIG_FILE_EXTENSIONS):
        values = _read_config_file(argv.pop(0))
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown argument(s) in the config file: {unknown}.")
        parser.set_defaults(**values)
        for action in parser._actions:
            if action.dest in values:
                action.required = False
    return parser.parse_args_into_dataclasses(args=argv)


def parse_layers(spec: str) -> list[int] | int:
    """`--student_layers`: a layer count (`"3"`) or layer indices (`"0,4,8,11"`)."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items or not all(item.isdigit() for item in items):
        raise ValueError(
            f"--student_layers {spec!r} must be a layer count ('3') or teacher layer indices ('0,4,8,11')."
        )
    numbers = [int(item) for item in items]
    return numbers[0] if len(numbers) == 1 and "," not in spec else numbers


def load_tokenizer(name_or_path: str, flag: str, **hub_kwargs: Any) -> PreTrainedTokenizerBase:
    """`AutoTokenizer.from_pretrained`, refusing a tokenizer that knows nothing but its special tokens: transformers
    builds one, without an error, from a model folder that holds no tokenizer files, and it would turn every word
    into the unknown token. `flag` names the option that points at another tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **hub_kwargs)
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise ValueError(
            f"{name_or_path} holds no tokenizer: the one loaded from it knows only its {len(tokenizer)} special "
            f"tokens, so every word would be unknown. Save the tokenizer beside the model "
            f"(`tokenizer.save_pretrained`), or name one with {flag}."
        )
    return tokenizer


def refuse_predict(training_args: TrainingArguments) -> None:
    """The image scripts have no unlabelled test split to predict: `--do_predict` is an error, not a silent no-op."""
    if training_args.do_predict:
        raise ValueError(
            "--do_predict is not supported by the image scripts (there is no unlabelled test split to predict): "
            "drop it and use --do_eval, which evaluates on the validation split."
        )


def setup_logging(training_args: TrainingArguments) -> None:
    """Log to stdout at the Trainer's per-process level (info on the main process, warnings elsewhere)."""
    std_logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[std_logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    level = training_args.get_process_log_level()
    std_logging.getLogger("hf_wcord").setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def end_processes() -> None:
    """Wait for every process, then tear the process group down, as `Accelerator.end_training` does: a process that
    exits with its gloo or NCCL group alive can abort ("terminate called without an active exception") and turn a
    finished run's exit code into a failure. A no-op in a single process."""
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes > 1:
        state.wait_for_everyone()
    state.destroy_process_group()


def eval_prefix(split: str, num_splits: int) -> str:
    """Metric prefix of an evaluation split: `eval` for a task's only split, `eval_<split>` when there are several
    (MNLI's matched and mismatched)."""
    return "eval" if num_splits == 1 else f"eval_{split}"


def train_and_record(trainer: Trainer) -> dict[str, float]:
    """Train, resuming as `--resume_from_checkpoint` says (a checkpoint folder, or `True`/`last` for the latest one in
    `output_dir`), then log and save the training metrics and the trainer state."""
    checkpoint = trainer.args.resume_from_checkpoint
    outcome = trainer.train(resume_from_checkpoint=True if checkpoint in ("True", "true", "last") else checkpoint)
    trainer.log_metrics("train", outcome.metrics)
    trainer.save_metrics("train", outcome.metrics)
    trainer.save_state()
    return outcome.metrics


def evaluate_splits(trainer: Trainer, evaluation: dict[str, datasets.Dataset]) -> dict[str, float]:
    """Evaluate `trainer.model` on each split, log and save the metrics (`eval_results.json`), and return them.

    A task with one evaluation split gets `eval_<metric>` names; MNLI gets `eval_validation_matched_<metric>` and
    `eval_validation_mismatched_<metric>`.
    """
    results: dict[str, float] = {}
    for split, dataset in evaluation.items():
        prefix = eval_prefix(split, len(evaluation))
        split_metrics = trainer.evaluate(eval_dataset=dataset, metric_key_prefix=prefix)
        split_metrics[f"{prefix}_samples"] = len(dataset)
        trainer.log_metrics("eval", split_metrics)
        results.update(split_metrics)
    trainer.save_metrics("eval", results)
    return results
