"""The transfer-data report: per cell, each method's mean accuracy and the paired differences that say what the
transfer rows, the representation terms and the batch mixing do, with their 95% t-interval over seeds;
`results.json`, `results.md` and `results.png`."""

from __future__ import annotations

import os
import statistics
from typing import Any

from curve_report import COLLAPSE_SHARE, collapsed_runs, format_difference, headline_metric, paired_difference
from report_files import load_suite_cells, pyplot, write_report_files

METHOD_ORDER = (
    "ce",
    "kd",
    "kd, transfer",
    "crd+kd, transfer",
    "wcord+kd, transfer",
    "kd, transfer, random batches",
)
COMPARISONS = (
    ("kd, transfer", "kd"),
    ("wcord+kd, transfer", "kd, transfer"),
    ("wcord+kd, transfer", "crd+kd, transfer"),
    ("crd+kd, transfer", "kd, transfer"),
    ("kd, transfer", "kd, transfer, random batches"),
    ("kd", "ce"),
)


def summarise_cell(cell: dict[str, Any]) -> dict[str, Any]:
    metric = headline_metric(cell["task"])
    scores: dict[str, dict[int, float]] = {}
    dev: dict[str, dict[int, float]] = {}
    for run in cell["runs"]:
        scores.setdefault(run["method"], {})[run["seed"]] = run[metric]
        dev.setdefault(run["method"], {})[run["seed"]] = run["eval"]
    methods = [m for m in METHOD_ORDER if m in scores]
    teacher = cell["teacher"]["eval"]
    return {
        "metric": metric,
        "means": {m: statistics.fmean(scores[m].values()) for m in methods},
        "stds": {m: statistics.stdev(scores[m].values()) if len(scores[m]) > 1 else 0.0 for m in methods},
        "dev_means": {m: statistics.fmean(dev[m].values()) for m in methods},
        "seeds": {m: len(scores[m]) for m in methods},
        "differences": {
            f"{a} - {b}": paired_difference(scores[a], scores[b])
            for a, b in COMPARISONS
            if a in scores and b in scores
        },
        # Share of the gap between CE on the labelled rows and the teacher (on the dev/test split) that each
        # method closes.
        "gap_closed": {
            m: (statistics.fmean(dev[m].values()) - statistics.fmean(dev["ce"].values()))
            / (teacher - statistics.fmean(dev["ce"].values()))
            for m in methods
            if "ce" in dev and teacher > statistics.fmean(dev["ce"].values())
        },
        "minutes": sum(run["train_seconds"] for run in cell["runs"]) / 60,
        "collapsed": collapsed_runs(cell["runs"]),
    }


def markdown(cells: list[dict[str, Any]]) -> str:
    lines = [
        "Accuracy (mean over seeds; for SST-2 the 5,000 held-out training-pool sentences, dev-set accuracy in "
        "brackets; for Fashion-MNIST the 10,000 test images):",
        "",
        "| student | labelled | unlabeled | seeds | teacher | " + " | ".join(METHOD_ORDER) + " | minutes |",
        "|---|---|---|---|---|" + "---|" * len(METHOD_ORDER) + "---|",
    ]
    for cell in cells:
        summary = cell["summary"]
        means = []
        for method in METHOD_ORDER:
            if method not in summary["means"]:
                means.append("-")
                continue
            text = f"{summary['means'][method]:.4f}"
            if summary["metric"] != "eval":
                text += f" ({summary['dev_means'][method]:.4f})"
            means.append(text)
        seeds = "/".join(str(n) for n in sorted(set(summary["seeds"].values())))
        lines.append(
            f"| {cell['student']} | {cell['train_examples']:,} | {cell['transfer_examples']:,} | {seeds} | "
            f"{cell['teacher']['eval']:.4f} | " + " | ".join(means) + f" | {summary['minutes']:.1f} |"
        )
    lines += [
        "",
        "Paired differences in points with their 95% t-interval over seeds (bold: the interval excludes 0):",
        "",
        "| student | " + " | ".join(f"{a} - {b}" for a, b in COMPARISONS) + " |",
        "|---|" + "---|" * len(COMPARISONS),
    ]
    for cell in cells:
        differences = [format_difference(cell["summary"]["differences"].get(f"{a} - {b}")) for a, b in COMPARISONS]
        lines.append(f"| {cell['student']} | " + " | ".join(differences) + " |")
    collapsed = [f"{cell['student']}: {', '.join(cell['summary']['collapsed'])}" for cell in cells]
    collapsed = [line for line, cell in zip(collapsed, cells, strict=True) if cell["summary"]["collapsed"]]
    if collapsed:
        lines += [
            "",
            f"Runs that collapsed (one class predicted for over {COLLAPSE_SHARE:.0%} of the dev/test examples): "
            + "; ".join(collapsed)
            + ".",
        ]
    gaps = [
        f"{cell['student']}: " + ", ".join(f"{m} {100 * g:.0f}%" for m, g in cell["summary"]["gap_closed"].items())
        for cell in cells
        if cell["summary"]["gap_closed"]
    ]
    if gaps:
        lines += [
            "",
            "Share of the gap between CE on the labelled rows and the teacher closed (dev/test): "
            + "; ".join(gaps)
            + ".",
        ]
    return "\n".join(lines)


def plot(cells: list[dict[str, Any]], path: str) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    figure, axes = plt.subplots(1, len(cells), figsize=(6.5 * len(cells), 4.5), squeeze=False)
    for axis, cell in zip(axes[0], cells, strict=True):
        summary = cell["summary"]
        methods = [m for m in METHOD_ORDER if m in summary["means"]]
        positions = range(len(methods))
        colors = ["tab:gray" if m in ("ce", "kd") else "tab:blue" for m in methods]
        axis.bar(
            positions,
            [summary["means"][m] for m in methods],
            yerr=[summary["stds"][m] for m in methods],
            color=colors,
            capsize=3,
        )
        axis.axhline(cell["teacher"]["eval"], color="black", linestyle="--", linewidth=1, label="teacher (dev/test)")
        values = [summary["means"][m] for m in methods]
        axis.set_ylim(min(values) - 0.05, max([*values, cell["teacher"]["eval"]]) + 0.02)
        axis.set_xticks(list(positions), [m.replace(", ", ",\n") for m in methods], fontsize=8)
        split = "5,000 held-out SST-2 sentences" if cell["task"] == "sst2" else "test images"
        axis.set_ylabel(f"accuracy ({split})")
        axis.set_title(
            f"{cell['task']}: {cell['student']}, {cell['train_examples']:,} labelled + "
            f"{cell['transfer_examples']:,} unlabeled (gray: labelled rows only)",
            fontsize=9,
        )
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def write_transfer_report(output_dir: str) -> str:
    cells = load_suite_cells(output_dir, "transfer")
    if not cells:
        raise SystemExit(f"No transfer cells in {os.path.join(output_dir, 'cells')}: run run_transfer.py first.")
    for cell in cells:
        cell["summary"] = summarise_cell(cell)
    return write_report_files(output_dir, "transfer", "cells", cells, markdown(cells), plot)
