"""Distilling with unlabeled transfer data: a small labelled set and a large unlabeled pool, per cell.

- sst2, narrow (random-init BERT, 256 x 4): 1,000 labelled sentences (of the teacher's 10,000) and 20,000 unlabeled
  training-pool sentences (rows 22,000-41,999 of the seeded pool: after the teacher's rows, the held-out slice and
  the 5,000 reported pool sentences), 1,000 optimizer steps of 16; reported on the 5,000 pool sentences (dev in
  brackets);
- sst2, layers3 (three of the teacher's layers): as narrow, at its default cell's learning rate (2e-4);
- fashion_mnist, vit-tiny: 1,000 labelled images (of the CNN teacher's 20,000) and 20,000 unlabeled ones (rows
  21,000-40,999 of the seeded training pool, after the teacher's rows and the held-out slice), 750 steps of 64;
  reported on all 10,000 test images; resnet-tiny the same, at 2e-3.

The unlabeled pool is disjoint from every reported split and from the teacher's training rows. Methods, at the
library's defaults and the learning rate of the student's default cell (no per-cell tuning for any method):
CE and KD on the labelled rows alone; KD, CRD + KD (RepDistiller's NCE) and WCoRD + KD on the labelled rows plus
the transfer rows, each batch a quarter labelled rows (`labelled_batch_share=0.25`); and KD on both with batches
drawn at random (about 5% labelled rows), to measure what the mixing does. Every method has the same step budget;
runs are paired (per seed the same student initialisation and data seed).

    python benchmarks/quality/run_transfer.py --cells narrow --threads 1
    python benchmarks/quality/run_transfer.py --report_only
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from cell_recorder import CellRecorder
from cells import Budget, prepare_cell
from protocol import METHODS, CellRuns
from report import setting_defaults
from run_curves import image_budget, text_budget
from run_quality import add_run_arguments, environment, prepare_runs, without_defaults
from transfer_report import write_transfer_report

HERE = os.path.dirname(os.path.abspath(__file__))
LABELLED_SHARE = 0.25


def transfer_budget(make_budget: Callable[[int], Budget], steps: int) -> Budget:
    """A learning curve's 1,000-example budget at `steps` optimizer steps, with 20,000 unlabeled transfer rows."""
    return dataclasses.replace(make_budget(1000), max_steps=steps, transfer_examples=20000)


# student -> (task, budget); each student's learning rate is the one its default cell chose for CE.
CELLS = {
    "narrow": ("sst2", transfer_budget(text_budget("narrow", 5e-4), 1000)),
    "layers3": ("sst2", transfer_budget(text_budget("layers3", 2e-4), 1000)),
    "vit-tiny": ("fashion_mnist", transfer_budget(image_budget("vit-tiny", 1e-3), 750)),
    "resnet-tiny": ("fashion_mnist", transfer_budget(image_budget("resnet-tiny", 2e-3), 750)),
}
# method -> (its settings, whether it trains on the transfer rows too)
TRANSFER_METHODS = {
    "ce": (METHODS["ce"], False),
    "kd": (METHODS["kd"], False),
    "kd, transfer": ({**METHODS["kd"], "labelled_batch_share": LABELLED_SHARE}, True),
    "crd+kd, transfer": ({**METHODS["crd+kd"], "labelled_batch_share": LABELLED_SHARE}, True),
    "wcord+kd, transfer": ({**METHODS["wcord+kd"], "labelled_batch_share": LABELLED_SHARE}, True),
    "kd, transfer, random batches": (METHODS["kd"], True),
}


def transfer_settings(method: str) -> dict[str, Any]:
    """A method's settings as a run records them: what differs from the library's defaults."""
    return without_defaults(TRANSFER_METHODS[method][0])


def main() -> None:
    from hf_wcord.unlabeled import add_transfer_rows

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--methods", nargs="+", default=list(TRANSFER_METHODS), choices=list(TRANSFER_METHODS))
    add_run_arguments(parser, os.path.join(HERE, "results_transfer"))
    cli = parser.parse_args()
    os.makedirs(os.path.join(cli.output_dir, "cells"), exist_ok=True)
    if cli.report_only:
        print(write_transfer_report(cli.output_dir))
        return

    tokenizer, cache_root = prepare_runs(cli.threads, "transfer_cache_", cli.cache_dir)
    for student in cli.cells:
        started = time.perf_counter()
        task, budget = CELLS[student]
        cell = prepare_cell(task, budget, cli.data_dir, cli.work_dir, tokenizer)
        splits, teacher, teacher_scores, collator = cell.splits, cell.teacher, cell.teacher_scores, cell.collator
        with_transfer = {**splits, "train": add_transfer_rows(splits["train"], splits["transfer"])}
        header = {
            "suite": "transfer",
            "task": task,
            "student": student,
            "train_examples": budget.train_examples,
            "transfer_examples": budget.transfer_examples,
            "budget": {**vars(budget), "optimizer_steps": budget.optimizer_steps},
            "teacher": teacher_scores,
            "defaults": setting_defaults(),
            "environment": environment(),
            "arguments": sys.argv[1:],
        }
        recorder = CellRecorder(
            os.path.join(cli.output_dir, "cells", f"{task}__{student}.json"),
            header,
            resume=True,
            expected_settings=transfer_settings,
        )
        (learning_rate,) = budget.student_learning_rates[student]
        runs = {
            transfer: CellRuns(
                task,
                budget,
                with_transfer if transfer else splits,
                teacher,
                student,
                os.path.join(cache_root, "transfer" if transfer else "labelled"),
                collator,
            )
            for transfer in (False, True)
        }
        for seed in cli.seeds:
            for method in cli.methods:
                transfer = TRANSFER_METHODS[method][1]
                settings = transfer_settings(method)
                key = {
                    "method": method,
                    "phase": "final",
                    "seed": seed,
                    "settings": settings,
                    "transfer": transfer,
                    "learning_rate": learning_rate,
                }
                record = recorder.run(key, runs[transfer].trainer(settings, learning_rate, seed))
                print(
                    f"{student} {method} seed {seed}: eval {record['eval']:.4f} ({record['train_seconds']:.0f} s)",
                    flush=True,
                )
        recorder.save(minutes=(time.perf_counter() - started) / 60)
    print(write_transfer_report(cli.output_dir))


if __name__ == "__main__":
    main()
