"""The defaults grid's report, in two stages.

1. The weights: each (lambda_global, lambda_local) pair with the bank's negatives, on the first selection seed; its
   held-out accuracy and rank per cell, its mean rank over the cells; the pair with the best mean rank is chosen
   (ties go to the higher mean accuracy).
2. Every candidate that ran at all the selection seeds, scored by its mean over them, chosen in the same way: for the
   defaults, the teacher-anchored direction's negatives (`student_negatives`: bank, batch, none) with a few weight
   pairs; where every candidate has the bank's negatives, the weights again over more seeds.
3. Where the grid also ran with the critic gate (`critic_gate=True`): the gated candidates ranked together with
   stage 1's, on the first selection seed.

Writes `results.json`, `results.md` and `results.png` (stage 1's mean rank over the weight grid).
"""

from __future__ import annotations

import statistics
from typing import Any

from report_files import load_suite_cells, pyplot, write_report_files

CELL_ORDER = ("narrow-1000", "vit-tiny-2000", "layers3", "resnet-tiny", "layers3-1000-x4", "narrow-1000-x4")
STAGE_ONE_NEGATIVES = "bank"

Candidate = tuple[float, float, str, bool]
KD_CANDIDATE: Candidate = (0.0, 0.0, "", False)


def candidate_of(settings: dict[str, Any]) -> Candidate:
    """(lambda_global, lambda_local, student_negatives, critic_gate); KD alone is (0, 0, "", False)."""
    return (
        settings["lambda_global"],
        settings["lambda_local"],
        settings.get("student_negatives", ""),
        bool(settings.get("critic_gate", False)),
    )


def held_out_scores(cell: dict[str, Any], seeds: list[int]) -> dict[Candidate, float]:
    """Mean held-out accuracy over `seeds` of each candidate that ran at every one of them."""
    scores: dict[Candidate, dict[int, float]] = {}
    for run in cell["runs"]:
        scores.setdefault(candidate_of(run["settings"]), {})[run["seed"]] = run["heldout"]
    return {
        candidate: statistics.fmean(by_seed[seed] for seed in seeds)
        for candidate, by_seed in scores.items()
        if all(seed in by_seed for seed in seeds)
    }


def ranks(scores: dict[Candidate, float]) -> dict[Candidate, float]:
    """Rank of each WCoRD candidate within the cell (1: best held-out accuracy; equal scores share their mean
    rank)."""
    pairs = [pair for pair in scores if pair != KD_CANDIDATE]
    ordered = sorted(pairs, key=lambda pair: -scores[pair])
    result = {}
    for pair in pairs:
        tied = [i + 1 for i, other in enumerate(ordered) if scores[other] == scores[pair]]
        result[pair] = statistics.fmean(tied)
    return result


def stage(cells: list[dict[str, Any]], seeds: list[int], keep: Any) -> dict[str, Any]:
    """The candidates that `keep` selects and that every cell ran at every seed: per cell the mean held-out accuracy
    over the seeds and the rank among them, the mean rank, and the candidate chosen."""
    per_cell = {}
    for cell in cells:
        scores = held_out_scores(cell, seeds)
        per_cell[cell["cell"]] = {c: v for c, v in scores.items() if c == KD_CANDIDATE or keep(c)}
    common = set.intersection(*(set(scores) for scores in per_cell.values())) if per_cell else set()
    pairs = sorted(common - {KD_CANDIDATE})
    per_cell_ranks = {name: ranks({pair: per_cell[name][pair] for pair in pairs}) for name in per_cell}
    rows = []
    for pair in pairs:
        rows.append(
            {
                "lambda_global": pair[0],
                "lambda_local": pair[1],
                "student_negatives": pair[2],
                "critic_gate": pair[3],
                "heldout": {name: per_cell[name][pair] for name in per_cell},
                "rank": {name: per_cell_ranks[name][pair] for name in per_cell},
                "mean_rank": statistics.fmean(per_cell_ranks[name][pair] for name in per_cell),
                "mean_heldout": statistics.fmean(per_cell[name][pair] for name in per_cell),
                "minus_kd": {name: 100 * (per_cell[name][pair] - per_cell[name][KD_CANDIDATE]) for name in per_cell},
            }
        )
    chosen = min(rows, key=lambda row: (row["mean_rank"], -row["mean_heldout"])) if rows else None
    kd = {name: scores.get(KD_CANDIDATE) for name, scores in per_cell.items()}
    return {"seeds": seeds, "rows": rows, "chosen": chosen, "kd": kd}


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Stage 1 on the first selection seed; stage 2 over every ungated candidate that ran at all the selection seeds;
    stage 3, where gated candidates ran, them and stage 1's on the first seed."""
    seeds = sorted({run["seed"] for cell in cells for run in cell["runs"]})
    weights = stage(cells, seeds[:1], lambda candidate: candidate[2] == STAGE_ONE_NEGATIVES and not candidate[3])
    negatives = stage(cells, seeds, lambda candidate: not candidate[3]) if len(seeds) > 1 else None
    gated = any(candidate_of(run["settings"])[3] for cell in cells for run in cell["runs"])
    gate = stage(cells, seeds[:1], lambda candidate: candidate[2] == STAGE_ONE_NEGATIVES) if gated else None
    return {"weights": weights, "negatives": negatives, "gate": gate}


def stage_table(names: list[str], result: dict[str, Any], axis: str = "negatives") -> list[str]:
    """The stage's table; its third column is the teacher-anchored negatives, or with `axis='gate'` the critic
    gate."""

    def third(row: dict[str, Any]) -> str:
        if axis == "gate":
            return "on" if row["critic_gate"] else "off"
        return row["student_negatives"]

    lines = [
        f"| global | local | {axis} | " + " | ".join(names) + " | mean rank | mean accuracy - KD (pt) |",
        "|---|---|---|" + "---|" * len(names) + "---|---|",
    ]
    kd_cells = " | ".join(f"{result['kd'][name]:.4f}" for name in names)
    lines.append(f"| KD alone | | | {kd_cells} | | |")
    for row in result["rows"]:
        cells_text = " | ".join(f"{row['heldout'][name]:.4f} ({row['rank'][name]:g})" for name in names)
        gain = statistics.fmean(row["minus_kd"].values())
        rank = f"**{row['mean_rank']:.2f}**" if row is result["chosen"] else f"{row['mean_rank']:.2f}"
        lines.append(
            f"| {row['lambda_global']:g} | {row['lambda_local']:g} | {third(row)} | {cells_text} | "
            f"{rank} | {gain:+.2f} |"
        )
    return lines


def markdown(cells: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    names = [cell["cell"] for cell in cells]
    minutes = {cell["cell"]: sum(i["minutes"] for i in cell.get("invocations", [])) for cell in cells}
    weights, negatives = summary["weights"], summary["negatives"]
    lines = [
        "Held-out accuracy (rank among the stage's candidates) of WCoRD + KD; KD alone for reference. Minutes per "
        "cell, every stage: " + ", ".join(f"{name} {minutes[name]:.1f}" for name in names) + ".",
        "",
        f"Stage 1, the weights (the bank's negatives), selection seed {', '.join(map(str, weights['seeds']))}:",
        "",
        *stage_table(names, weights),
    ]
    chosen = weights["chosen"]
    if chosen:
        lines += [
            "",
            f"Chosen (best mean rank): lambda_global {chosen['lambda_global']:g}, "
            f"lambda_local {chosen['lambda_local']:g}.",
        ]
    if negatives and negatives["chosen"]:
        axis = (
            "the teacher-anchored direction's negatives with the weights"
            if len({row["student_negatives"] for row in negatives["rows"]}) > 1
            else "the weights again"
        )
        lines += [
            "",
            f"Stage 2, {axis}: every candidate run at all the selection seeds, mean of seeds "
            f"{', '.join(map(str, negatives['seeds']))}:",
            "",
            *stage_table(names, negatives),
            "",
            f"Chosen (best mean rank): lambda_global {negatives['chosen']['lambda_global']:g}, lambda_local "
            f"{negatives['chosen']['lambda_local']:g}, student_negatives {negatives['chosen']['student_negatives']}.",
        ]
    gate = summary["gate"]
    if gate and gate["chosen"]:
        best = gate["chosen"]
        lines += [
            "",
            "Stage 3, the critic gate (`critic_gate=True`): the gated candidates ranked with stage 1's, selection "
            f"seed {', '.join(map(str, gate['seeds']))}:",
            "",
            *stage_table(names, gate, "gate"),
            "",
            f"Chosen (best mean rank): lambda_global {best['lambda_global']:g}, lambda_local "
            f"{best['lambda_local']:g}, critic gate {'on' if best['critic_gate'] else 'off'}.",
        ]
    return "\n".join(lines)


def plot(entries: list[dict[str, Any]], path: str) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    rows = entries[0]["weights"]["rows"] if entries else []
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
    axis.set_title("Mean held-out rank over the cells (1: best), bank negatives", fontsize=9)
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
