"""The embedding-distillation report: per cell, the teacher and the untrained student, each method's mean STS-B
Spearman and probe accuracy over seeds, the share of the untrained-to-teacher STS gap it closes, and the paired
differences (with their 95% t-interval) of every method against MSE, the usual recipe, and of each WCoRD variant
against DistilCSE, the strongest published baseline here; `results.json`, `results.md` and `results.png`."""

from __future__ import annotations

import os
import statistics
from typing import Any

from curve_report import format_difference, paired_difference
from report_files import load_suite_cells, pyplot, write_report_files

CELL_ORDER = ("mpnet-minilm3", "minilm-narrow")
METHOD_ORDER = ("mse", "cosine", "distilcse", "wcord global", "wcord global+local", "mse+wcord")
WCORD_METHODS = ("wcord global", "wcord global+local", "mse+wcord")
COMPARISONS = (
    *((method, "mse") for method in (*WCORD_METHODS, "distilcse", "cosine")),
    *((method, "distilcse") for method in WCORD_METHODS),
)
METRICS = ("sts_spearman", "probe_accuracy")


def summarise(cell: dict[str, Any]) -> dict[str, Any]:
    references = {run["method"]: run for run in cell["runs"] if run["phase"] == "reference"}
    scores: dict[str, dict[str, dict[int, float]]] = {metric: {} for metric in METRICS}
    for run in cell["runs"]:
        if run["phase"] == "final":
            for metric in METRICS:
                scores[metric].setdefault(run["method"], {})[run["seed"]] = run[metric]
    methods = [m for m in METHOD_ORDER if m in scores["sts_spearman"]]
    means = {metric: {m: statistics.fmean(scores[metric][m].values()) for m in methods} for metric in METRICS}
    stds = {
        metric: {m: statistics.stdev(v.values()) if len(v) > 1 else 0.0 for m, v in scores[metric].items()}
        for metric in METRICS
    }
    teacher, untrained = references["teacher"]["sts_spearman"], references["untrained"]["sts_spearman"]
    return {
        "references": {name: {metric: run[metric] for metric in METRICS} for name, run in references.items()},
        "means": means,
        "stds": stds,
        "seeds": {m: len(scores["sts_spearman"][m]) for m in methods},
        "gap_closed": {m: (means["sts_spearman"][m] - untrained) / (teacher - untrained) for m in methods},
        "differences": {
            metric: {
                f"{a} - {b}": paired_difference(scores[metric][a], scores[metric][b])
                for a, b in COMPARISONS
                if a in scores[metric] and b in scores[metric]
            }
            for metric in METRICS
        },
        "minutes": sum(run["train_seconds"] for run in cell["runs"]) / 60,
    }


def markdown(cells: list[dict[str, Any]]) -> str:
    lines = []
    for cell in cells:
        summary = cell["summary"]
        references = summary["references"]
        lines += [
            f"**{cell['cell']}** ({cell['teacher']} teacher, {cell['student']} student; "
            f"{cell['training_sentences']:,} unlabeled sentences, {cell['budget']['steps']} steps of "
            f"{cell['budget']['batch_size']}; "
            f"{summary['minutes']:.0f} minutes of training):",
            "",
            "| model | STS-B Spearman | SST-2 probe accuracy | STS gap closed | seeds |",
            "|---|---|---|---|---|",
            f"| teacher | {references['teacher']['sts_spearman']:.4f} | "
            f"{references['teacher']['probe_accuracy']:.4f} | 100% | - |",
            f"| untrained student | {references['untrained']['sts_spearman']:.4f} | "
            f"{references['untrained']['probe_accuracy']:.4f} | 0% | - |",
        ]
        for method in summary["gap_closed"]:
            sts, probe = summary["means"]["sts_spearman"][method], summary["means"]["probe_accuracy"][method]
            sts_std, probe_std = summary["stds"]["sts_spearman"][method], summary["stds"]["probe_accuracy"][method]
            lines.append(
                f"| {method} | {sts:.4f} ± {sts_std:.4f} | {probe:.4f} ± {probe_std:.4f} | "
                f"{100 * summary['gap_closed'][method]:.0f}% | {summary['seeds'][method]} |"
            )
        lines += [
            "",
            "Paired differences in points with the 95% t-interval (bold: it excludes 0):",
            "",
            "| difference | STS-B Spearman | SST-2 probe accuracy |",
            "|---|---|---|",
        ]
        differences = summary["differences"]
        for name, sts in differences["sts_spearman"].items():
            lines.append(
                f"| {name} | {format_difference(sts)} | {format_difference(differences['probe_accuracy'][name])} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(cells: list[dict[str, Any]], path: str) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    figure, axes = plt.subplots(1, len(cells), figsize=(6.5 * len(cells), 4.5), squeeze=False)
    for axis, cell in zip(axes[0], cells, strict=True):
        summary = cell["summary"]
        methods = list(summary["gap_closed"])
        values = [summary["means"]["sts_spearman"][m] for m in methods]
        colors = ["tab:blue" if "wcord" in m else "tab:gray" for m in methods]
        axis.bar(range(len(methods)), values, yerr=[summary["stds"]["sts_spearman"][m] for m in methods],
                 color=colors, capsize=3)  # fmt: skip
        references = summary["references"]
        axis.axhline(references["teacher"]["sts_spearman"], color="black", linestyle="--", label="teacher")
        axis.axhline(references["untrained"]["sts_spearman"], color="red", linestyle=":", label="untrained student")
        low = min([*values, references["untrained"]["sts_spearman"]])
        axis.set_ylim(low - 0.03, references["teacher"]["sts_spearman"] + 0.02)
        axis.set_xticks(range(len(methods)), [m.replace(" ", "\n", 1) for m in methods], fontsize=8)
        axis.set_ylabel("STS-B validation Spearman")
        axis.set_title(f"{cell['cell']}: {cell['teacher']} -> {cell['student']} (blue: WCoRD terms)", fontsize=9)
        axis.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def write_embedding_report(output_dir: str) -> str:
    cells = sorted(load_suite_cells(output_dir, "embedding"), key=lambda cell: CELL_ORDER.index(cell["cell"]))
    if not cells:
        raise SystemExit(f"No embedding cells in {os.path.join(output_dir, 'cells')}: run run_embedding.py first.")
    for cell in cells:
        cell["summary"] = summarise(cell)
    return write_report_files(output_dir, "embedding", "cells", cells, markdown(cells), plot)
