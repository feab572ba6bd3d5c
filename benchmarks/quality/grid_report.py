"""The defaults grid's report: each weight pair's held-out accuracy and rank per cell, its mean rank over the cells,
and the pair chosen (the best mean rank; ties go to the higher mean accuracy); `results.json`, `results.md` and
`results.png` (the mean rank over the grid)."""

from __future__ import annotations

import statistics
from typing import Any

from report_files import load_suite_cells, pyplot, write_report_files

CELL_ORDER = ("narrow-1000", "vit-tiny-2000", "layers3", "resnet-tiny")


def pair_of(settings: dict[str, float]) -> tuple[float, float]:
    return settings["lambda_global"], settings["lambda_local"]


def held_out_scores(cell: dict[str, Any]) -> dict[tuple[float, float], float]:
    """Mean held-out accuracy of each weight pair (KD alone is (0, 0)) over the cell's selection seeds."""
    scores: dict[tuple[float, float], list[float]] = {}
    for run in cell["runs"]:
        scores.setdefault(pair_of(run["settings"]), []).append(run["heldout"])
    return {pair: statistics.fmean(values) for pair, values in scores.items()}


def ranks(scores: dict[tuple[float, float], float]) -> dict[tuple[float, float], float]:
    """Rank of each WCoRD pair within the cell (1: best held-out accuracy; equal scores share their mean rank)."""
    pairs = [pair for pair in scores if pair != (0.0, 0.0)]
    ordered = sorted(pairs, key=lambda pair: -scores[pair])
    result = {}
    for pair in pairs:
        tied = [i + 1 for i, other in enumerate(ordered) if scores[other] == scores[pair]]
        result[pair] = statistics.fmean(tied)
    return result


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    per_cell = {cell["cell"]: held_out_scores(cell) for cell in cells}
    per_cell_ranks = {name: ranks(scores) for name, scores in per_cell.items()}
    pairs = sorted(set.intersection(*(set(r) for r in per_cell_ranks.values()))) if per_cell_ranks else []
    rows = []
    for pair in pairs:
        rows.append(
            {
                "lambda_global": pair[0],
                "lambda_local": pair[1],
                "heldout": {name: per_cell[name][pair] for name in per_cell},
                "rank": {name: per_cell_ranks[name][pair] for name in per_cell},
                "mean_rank": statistics.fmean(per_cell_ranks[name][pair] for name in per_cell),
                "mean_heldout": statistics.fmean(per_cell[name][pair] for name in per_cell),
                "minus_kd": {name: 100 * (per_cell[name][pair] - per_cell[name][(0.0, 0.0)]) for name in per_cell},
            }
        )
    chosen = min(rows, key=lambda row: (row["mean_rank"], -row["mean_heldout"])) if rows else None
    kd = {name: scores.get((0.0, 0.0)) for name, scores in per_cell.items()}
    return {"rows": rows, "chosen": chosen, "kd": kd, "seeds": sorted({r["seed"] for c in cells for r in c["runs"]})}


def markdown(cells: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    names = [cell["cell"] for cell in cells]
    minutes = {cell["cell"]: sum(i["minutes"] for i in cell.get("invocations", [])) for cell in cells}
    lines = [
        f"Held-out accuracy (rank among the grid's pairs) of WCoRD + KD at each weight pair, selection seed(s) "
        f"{', '.join(map(str, summary['seeds']))}; KD alone for reference. Minutes per cell: "
        + ", ".join(f"{name} {minutes[name]:.1f}" for name in names)
        + ".",
        "",
        "| global | local | " + " | ".join(names) + " | mean rank | mean accuracy - KD (pt) |",
        "|---|---|" + "---|" * len(names) + "---|---|",
    ]
    kd_cells = " | ".join(f"{summary['kd'][name]:.4f}" for name in names)
    lines.append(f"| KD alone | | {kd_cells} | | |")
    chosen = summary["chosen"]
    for row in summary["rows"]:
        marked = row is chosen
        cells_text = " | ".join(f"{row['heldout'][name]:.4f} ({row['rank'][name]:g})" for name in names)
        gain = statistics.fmean(row["minus_kd"].values())
        rank = f"**{row['mean_rank']:.2f}**" if marked else f"{row['mean_rank']:.2f}"
        lines.append(f"| {row['lambda_global']:g} | {row['lambda_local']:g} | {cells_text} | {rank} | {gain:+.2f} |")
    if chosen:
        lines += [
            "",
            f"Chosen (best mean rank): lambda_global {chosen['lambda_global']:g}, "
            f"lambda_local {chosen['lambda_local']:g}.",
        ]
    return "\n".join(lines)


def plot(entries: list[dict[str, Any]], path: str) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    rows = entries[0]["rows"] if entries else []
    globals_ = sorted({row["lambda_global"] for row in rows})
    locals_ = sorted({row["lambda_local"] for row in rows})
    grid = [[float("nan")] * len(globals_) for _ in locals_]
    for row in rows:
        grid[locals_.index(row["lambda_local"])][globals_.index(row["lambda_global"])] = row["mean_rank"]
    figure, axis = plt.subplots(figsize=(5, 3.6))
    image = axis.imshow(grid, cmap="viridis_r", origin="lower")
    middle = (image.norm.vmin + image.norm.vmax) / 2
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            if value == value:  # a pair some cell has not run yet is left blank
                color = "black" if value < middle else "white"
                axis.text(j, i, f"{value:.1f}", ha="center", va="center", color=color)
    axis.set_xticks(range(len(globals_)), [f"{g:g}" for g in globals_])
    axis.set_yticks(range(len(locals_)), [f"{loc:g}" for loc in locals_])
    axis.set_xlabel("lambda_global")
    axis.set_ylabel("lambda_local")
    axis.set_title("Mean held-out rank over the cells (1: best)")
    figure.colorbar(image, ax=axis)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def write_grid_report(output_dir: str) -> str:
    cells = load_suite_cells(output_dir, "defaults-grid")
    cells.sort(key=lambda cell: CELL_ORDER.index(cell["cell"]) if cell["cell"] in CELL_ORDER else len(CELL_ORDER))
    summary = summarise(cells)
    entry = {**summary, "cells": cells}
    return write_report_files(output_dir, "defaults-grid", "grid", [entry], markdown(cells, summary), plot)
