"""The library defaults of the two WCoRD weights, chosen once for every cell: each (lambda_global, lambda_local) of
the grid, and KD alone for reference, trains on every cell with the selection seed (never a reported one) and is
scored on the cell's held-out split; the defaults are the pair with the best mean held-out rank over the cells.

Cells: one per student, at the size where the student is weakest (the curves' smallest affordable point) or at the
quality suite's budget:

- narrow at 1,000 SST-2 sentences and vit-tiny at 2,000 Fashion-MNIST images (the learning-curve budgets);
- layers3 on SST-2 and resnet-tiny on Fashion-MNIST (the quality suite's budgets and learning rates).

Everything else (KD weight and temperature, critic warm-up, bank, Sinkhorn) stays at the library's defaults. A
second stage adds the teacher-anchored direction's negatives as an axis (`student_negatives`: the bank's stored
students, the batch's fresh ones, or none) at a few weight pairs; every candidate is ranked with all the others.

    python benchmarks/quality/run_defaults_grid.py --cells narrow-1000 layers3
    python benchmarks/quality/run_defaults_grid.py --global_weights 0.05 0.2 --local_weights 0.1 \
        --student_negatives batch none
    python benchmarks/quality/run_defaults_grid.py --global_weights 0.05 0.2 0.4 --local_weights 0.1 --critic_gate on
    python benchmarks/quality/run_defaults_grid.py --report_only

The longer-budget cells (`layers3-1000-x4`, `narrow-1000-x4`: 1,000 sentences at four times the curves' steps) are not
among the defaults' cells; they ask whether budgets of many passes over little data want other weights, and write
to their own folder:

    python benchmarks/quality/run_defaults_grid.py --cells layers3-1000-x4 narrow-1000-x4 \
        --global_weights 0.05 0.2 0.4 0.8 --local_weights 0.1 --output_dir benchmarks/quality/results_defaults_x4
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from typing import Any

from cell_recorder import CellRecorder
from cells import SUITES, Budget, prepare_cell
from grid_report import write_grid_report
from protocol import SELECTION_SEED, CellRuns
from run_curves import CURVES
from run_quality import add_run_arguments, environment, prepare_runs

HERE = os.path.dirname(os.path.abspath(__file__))
GLOBAL_WEIGHTS = (0.05, 0.1, 0.2, 0.4)
LOCAL_WEIGHTS = (0.1, 0.5, 1.0)
STUDENT_NEGATIVES = ("bank",)
KD_ONLY = {"lambda_global": 0.0, "lambda_local": 0.0}


def curve_cell(curve: str, size: int) -> tuple[str, str, Budget, float]:
    """A learning-curve point as a grid cell: its task, student, budget and learning rate."""
    task, student, _, make_budget = CURVES[curve]
    budget = make_budget(size)
    (learning_rate,) = budget.student_learning_rates[student]
    return task, student, budget, learning_rate


# cell -> (task, student, budget, learning rate): the quality suite's learning rates are the ones CE chose there.
DEFAULT_CELLS: dict[str, tuple[str, str, Budget, float]] = {
    "narrow-1000": curve_cell("narrow", 1000),
    "vit-tiny-2000": curve_cell("vit-tiny", 2000),
    "layers3": ("sst2", "layers3", SUITES["default"]["sst2"], 2e-4),
    "resnet-tiny": ("fashion_mnist", "resnet-tiny", SUITES["default"]["fashion_mnist"], 2e-3),
}
# The longer budget (four times the steps on 1,000 sentences), where the weights may want to differ.
LONGER_BUDGET_CELLS: dict[str, tuple[str, str, Budget, float]] = {
    "layers3-1000-x4": curve_cell("layers3-x4", 1000),
    "narrow-1000-x4": curve_cell("narrow-x4", 1000),
}
CELLS = {**DEFAULT_CELLS, **LONGER_BUDGET_CELLS}


def grid(
    global_weights: list[float], local_weights: list[float], student_negatives: list[str], gates: list[str]
) -> list[dict[str, Any]]:
    """KD alone, then every (lambda_global, lambda_local, student_negatives, critic gate) candidate of the grid (a
    gated candidate's settings add `critic_gate: True`; an ungated one's are as before the gate existed)."""
    candidates = itertools.product(global_weights, local_weights, student_negatives, gates)
    return [
        KD_ONLY,
        *(
            {"lambda_global": g, "lambda_local": loc, "student_negatives": neg}
            | ({"critic_gate": True} if gate == "on" else {})
            for g, loc, neg, gate in candidates
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=list(DEFAULT_CELLS), choices=list(CELLS))
    parser.add_argument("--global_weights", nargs="+", type=float, default=list(GLOBAL_WEIGHTS))
    parser.add_argument("--local_weights", nargs="+", type=float, default=list(LOCAL_WEIGHTS))
    parser.add_argument(
        "--student_negatives",
        nargs="+",
        default=list(STUDENT_NEGATIVES),
        choices=["bank", "batch", "none"],
        help="Negatives of the teacher-anchored direction (the grid's second stage tries 'batch' and 'none').",
    )
    parser.add_argument(
        "--critic_gate",
        nargs="+",
        default=["off"],
        choices=["off", "on"],
        help="Candidates without and/or with the critic gate (the report's third stage ranks the gated ones).",
    )
    add_run_arguments(parser, os.path.join(HERE, "results_defaults"))
    parser.set_defaults(seeds=[SELECTION_SEED])
    cli = parser.parse_args()
    os.makedirs(os.path.join(cli.output_dir, "cells"), exist_ok=True)
    if cli.report_only:
        print(write_grid_report(cli.output_dir))
        return

    tokenizer, cache_root = prepare_runs(cli.threads, "grid_cache_", cli.cache_dir)
    for name in cli.cells:
        task, student, budget, learning_rate = CELLS[name]
        started = time.perf_counter()
        cell = prepare_cell(task, budget, cli.data_dir, cli.work_dir, tokenizer)
        cell.splits.pop("pool", None)  # only the held-out split decides
        header: dict[str, Any] = {
            "suite": "defaults-grid",
            "cell": name,
            "task": task,
            "student": student,
            "budget": {**vars(budget), "optimizer_steps": budget.optimizer_steps},
            "learning_rate": learning_rate,
            "teacher": cell.teacher_scores,
            "environment": environment(),
            "arguments": sys.argv[1:],
        }
        recorder = CellRecorder(os.path.join(cli.output_dir, "cells", f"{name}.json"), header, resume=True)
        runs = CellRuns(task, budget, cell.splits, cell.teacher, student, cache_root, cell.collator)
        for seed in cli.seeds:
            for settings in grid(cli.global_weights, cli.local_weights, cli.student_negatives, cli.critic_gate):
                key = {"phase": "selection", "seed": seed, "settings": settings, "learning_rate": learning_rate}
                record = recorder.run(key, runs.trainer(settings, learning_rate, seed))
                print(
                    f"{name} seed {seed} {settings}: held-out {record['heldout']:.4f} "
                    f"({record['train_seconds']:.0f} s)",
                    flush=True,
                )
        recorder.save(minutes=(time.perf_counter() - started) / 60)
    print(write_grid_report(cli.output_dir))


if __name__ == "__main__":
    main()
