"""Merge the cells' JSON files into `results.json`, a markdown table and a plot."""

from __future__ import annotations

import json
import os
import statistics
from typing import Any

from cell_recorder import recorded_defaults
from cells import SUITES
from protocol import METHODS
from report_files import load_suite_cells

SETTING_NAMES = {
    "alpha_kd": "kd",
    "kd_temperature": "T",
    "lambda_global": "global",
    "lambda_local": "local",
    "student_negatives": "teacher-anchored negatives",
    "critic_gate": "critic gate",
}


def load_cells(output_dir: str, suite: str) -> list[dict[str, Any]]:
    """The cells of `suite` found in `output_dir/cells`, in the suite's order."""
    order = [(task, student) for task, budget in SUITES[suite].items() for student in budget.students]
    cells = load_suite_cells(output_dir, suite)
    return sorted(cells, key=lambda cell: order.index((cell["task"], cell["student"])))


def cell_defaults(cell: dict[str, Any]) -> dict[str, Any]:
    """The defaults that the cell's run settings are relative to (recorded by the code that ran them)."""
    if "defaults" not in cell:
        raise ValueError(
            f"The {cell['task']} {cell['student']} cell records no `defaults`, so its runs' settings cannot be read: "
            "rerun it with this version of the benchmark, or add the defaults of the commit that ran it to its JSON."
        )
    return recorded_defaults(cell["defaults"])


def summarise(cell: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean and standard deviation over the reported seeds of each method's final runs."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in cell["runs"]:
        if run["phase"] == "final":
            groups.setdefault(run["method"], []).append(run)
    rows = []
    for method in [m for m in METHODS if m in groups]:
        runs = groups[method]
        values = [run["eval"] for run in runs]
        rows.append(
            {
                "method": method,
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "per_seed": {str(run["seed"]): run["eval"] for run in runs},
                "max_majority_share": max(run["eval_majority_share"] for run in runs),
                "settings": runs[0]["settings"],
                "learning_rate": runs[0]["learning_rate"],
                "mean_train_seconds": statistics.fmean(run["train_seconds"] for run in runs),
            }
        )
    return rows


def setting_defaults() -> dict[str, Any]:
    """WCoRDConfig's defaults of the settings a report describes. A run records only the settings that differ from the
    defaults of the code that made it, so each cell stores these beside its runs (`defaults`)."""
    from hf_wcord import WCoRDConfig

    return {name: WCoRDConfig.__dataclass_fields__[name].default for name in SETTING_NAMES}


def describe(settings: dict[str, Any], defaults: dict[str, Any]) -> str:
    """A run's KD and WCoRD weights, from its recorded `settings` over the `defaults` of the code that made it."""
    values = {**defaults, **settings}
    parts = []
    if values["alpha_kd"] > 0:
        parts.append(f"kd {values['alpha_kd']:g}, T {values['kd_temperature']:g}")
    for name in ("lambda_global", "lambda_local"):
        if values[name] > 0:
            parts.append(f"{SETTING_NAMES[name]} {values[name]:g}")
    return ", ".join(parts) or "-"


def markdown(cells: list[dict[str, Any]]) -> str:
    """Accuracy (mean ± std over seeds; the best per cell in bold), then the settings each method used."""
    summaries = {(cell["task"], cell["student"]): {row["method"]: row for row in cell["summary"]} for cell in cells}
    defaults = {(cell["task"], cell["student"]): cell_defaults(cell) for cell in cells}
    panels = list(summaries)
    methods = [m for m in METHODS if any(m in rows for rows in summaries.values())]
    header = "| method | " + " | ".join(f"{task}: {student}" for task, student in panels) + " |"
    rule = "|---|" + "---|" * len(panels)
    teachers = [f"{cell['teacher']['eval']:.4f}" for cell in cells]
    teacher_minutes = [f"{cell['teacher']['train_minutes']:.1f}" for cell in cells]
    accuracy = [header, rule, "| teacher | " + " | ".join(teachers) + " |"]
    accuracy.append("| (teacher's training minutes) | " + " | ".join(teacher_minutes) + " |")
    used = [header, rule]
    for method in methods:
        scores, settings = [], []
        for panel in panels:
            row = summaries[panel].get(method)
            if row is None:
                scores.append("-")
                settings.append("-")
                continue
            best = max(r["mean"] for r in summaries[panel].values())
            text = f"{row['mean']:.4f} ± {row['std']:.4f}"
            scores.append(f"**{text}**" if row["mean"] == best else text)
            settings.append(f"{describe(row['settings'], defaults[panel])}; lr {row['learning_rate']:g}")
        accuracy.append(f"| {method} | " + " | ".join(scores) + " |")
        used.append(f"| {method} | " + " | ".join(settings) + " |")
    steps = " / ".join(f"{cell['budget']['optimizer_steps']}" for cell in cells)
    minutes = " / ".join(
        f"{sum(run['train_seconds'] for run in cell['runs'] if 'reused_from' not in run) / 60:.1f}" for cell in cells
    )
    seeds = sorted({len(row["per_seed"]) for cell in cells for row in cell["summary"]})
    return "\n".join(
        [
            f"Accuracy on the reported split, mean ± std over {'/'.join(map(str, seeds))} seeds "
            f"(optimizer steps per run: {steps}; training minutes per cell, summed over its runs: {minutes}):",
            "",
            *accuracy,
            "",
            "Settings used (chosen on the held-out split where a method is tuned):",
            "",
            *used,
            *ablation_table(summaries),
        ]
    )


def ablation_table(summaries: dict[tuple[str, str], dict[str, dict[str, Any]]]) -> list[str]:
    """A table of `wcord+kd` minus each ablation (or variant) per cell, for the cells that ran them (none: no
    table)."""
    ablations = [m for m in METHODS if m.startswith("wcord+kd, ") and any(m in rows for rows in summaries.values())]
    panels = [panel for panel, rows in summaries.items() if "wcord+kd" in rows and any(a in rows for a in ablations)]
    if not panels:
        return []
    lines = [
        "",
        "What each fix does: the defaults (`wcord+kd`) minus each ablation, in accuracy points (mean over seeds; the "
        "larger of the two standard deviations in brackets; positive: the fix helps; for the queue, positive: the "
        "bank's slot per example beats a queue of 1,024 recent embeddings):",
        "",
    ]
    lines.append("| fix undone | " + " | ".join(f"{task}: {student}" for task, student in panels) + " |")
    lines.append("|---|" + "---|" * len(panels))
    for ablation in ablations:
        cells = []
        for panel in panels:
            rows = summaries[panel]
            if ablation not in rows:
                cells.append("-")
                continue
            defaults, undone = rows["wcord+kd"], rows[ablation]
            difference = 100 * (defaults["mean"] - undone["mean"])
            cells.append(f"{difference:+.2f} ({100 * max(defaults['std'], undone['std']):.2f})")
        lines.append(f"| {ablation.removeprefix('wcord+kd, ')} | " + " | ".join(cells) + " |")
    return lines


def plot(cells: list[dict[str, Any]], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(1, len(cells), figsize=(5 * len(cells), 4.5), squeeze=False)
    for axis, cell in zip(axes[0], cells, strict=True):
        rows = cell["summary"]
        axis.bar(range(len(rows)), [r["mean"] for r in rows], yerr=[r["std"] for r in rows], capsize=3)
        axis.axhline(cell["teacher"]["eval"], color="gray", linestyle="--", linewidth=1, label="teacher")
        axis.set_xticks(range(len(rows)), [r["method"] for r in rows], rotation=60, ha="right")
        low = min(r["mean"] - r["std"] for r in rows)
        high = max(max(r["mean"] + r["std"] for r in rows), cell["teacher"]["eval"])
        axis.set_ylim(max(0.0, low - 0.02), min(1.0, high + 0.01))
        axis.set_title(f"{cell['task']}: {cell['student']}")
        axis.set_ylabel("accuracy")
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def write_report(output_dir: str, suite: str) -> str:
    """Write results.json, results.md and results.png from the cells; return the markdown table."""
    cells = load_cells(output_dir, suite)
    if not cells:
        raise SystemExit(f"No {suite!r} cells in {os.path.join(output_dir, 'cells')}: run the benchmark first.")
    for cell in cells:
        cell["summary"] = summarise(cell)
    with open(os.path.join(output_dir, "results.json"), "w") as handle:
        json.dump({"suite": suite, "cells": cells}, handle, indent=2)
    table = markdown(cells)
    with open(os.path.join(output_dir, "results.md"), "w") as handle:
        handle.write(table + "\n")
    plotted = plot(cells, os.path.join(output_dir, "results.png"))
    return table + ("" if plotted else "\n(plot skipped: matplotlib not installed)")
