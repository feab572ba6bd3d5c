"""Learning curves: CE, KD, CRD + KD and WCoRD + KD over the number of training examples, at a fixed step budget.

A student without a CNN's inductive bias (vit-tiny) or without pretraining (narrow) trained on little data is where a
teacher's representation should transfer most. Each point of a curve is a cell with its own JSON file:

- fashion_mnist, vit-tiny: 500, 1,000, 2,000 and 8,000 training images (a subset of the CNN teacher's 20,000), 750
  optimizer steps of 64 images at every size, reported on all 10,000 test images;
- sst2, narrow (random-init BERT, 256 x 4): 1,000, 2,000, 4,000 and 16,000 training sentences, 500 steps of 16,
  reported on the dev set (872) and on 5,000 training-pool sentences that no teacher or student trained on;
- resnet-tiny (500 and 8,000 images), layers3 (three of the teacher's layers; 1,000 and 4,000 sentences) and
  minilm3 (three layers of the pretrained MiniLM-L6, not fine-tuned; 4,000 sentences, from the MiniLM-L6 teacher and,
  as `minilm3-mpnet`, from an all-mpnet-base-v2 teacher with its own tokenizer) at the same budgets: their largest
  size is the default quality cell's data and steps, at this protocol;
- `layers3-x4`, `minilm3-x4` and `narrow-x4`: 1,000 sentences at four times the steps (2,000 of 16, 32 passes over
  the data), and `vit-tiny-x4` and `resnet-tiny-x4`: 500 images at four times the steps (3,000 of 64, 384 passes),
  to see whether the representation terms, whose critics learn from a memory bank written once per pass, earn
  their place when the budget visits each example more often.

Protocol: no per-point tuning for any method. Every method runs at its library defaults (the WCoRD weights were chosen
once for all cells, on selection seeds: see the README) with the learning rate of the student's default cell. Runs
are paired: for a seed, every method has the same student initialisation and data order. The report gives each
method's mean and the paired differences with their 95% t-interval over seeds.

    python benchmarks/quality/run_curves.py --curves vit-tiny --sizes 500 1000 --methods ce kd
    python benchmarks/quality/run_curves.py --report_only
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
from cells import DEFAULT_MPNET_DIR, Budget, prepare_cell
from curve_report import write_curve_report
from protocol import CURVE_METHODS, METHODS, CellRuns
from report import setting_defaults
from run_quality import add_run_arguments, environment, prepare_runs, without_defaults

HERE = os.path.dirname(os.path.abspath(__file__))


def image_budget(student: str, learning_rate: float) -> Callable[[int], Budget]:
    """Fashion-MNIST with `size` of the CNN teacher's 20,000 images: 750 optimizer steps of 64 (the default cell's
    8,000 images for 6 epochs), reported on all 10,000 test images."""
    return lambda size: Budget(
        20000, 5, 2e-3, 128, size, 1000, None, 1, 64, 0.1, {student: (learning_rate,)}, max_steps=750
    )


def text_budget(student: str, learning_rate: float) -> Callable[[int], Budget]:
    """SST-2 with `size` training sentences: 500 optimizer steps of 16 (the default cell's 4,000 sentences for 2
    epochs), reported on the dev set and on 5,000 training-pool sentences that no model trained on."""
    return lambda size: Budget(
        10000,
        1,
        1e-4,
        32,
        size,
        1000,
        None,
        1,
        16,
        0.1,
        {student: (learning_rate,)},
        max_steps=500,
        heldout_start=16000,
        pool_report_examples=5000,
    )


def longer(make_budget: Callable[[int], Budget], multiple: int) -> Callable[[int], Budget]:
    """The same budget with `multiple` times the optimizer steps: more passes over the same examples, where a
    critic that learns from the memory bank (CRD's, WCoRD's) sees each example's stored feature more often."""

    def make(size: int) -> Budget:
        budget = make_budget(size)
        return dataclasses.replace(budget, max_steps=multiple * budget.max_steps)

    return make


def mpnet_teacher(make_budget: Callable[[int], Budget]) -> Callable[[int], Budget]:
    """The same budget with the all-mpnet-base-v2 teacher, trained as in the `sst2_mpnet` quality cell: on 4,000 of
    its 10,000 sentences, at 5e-5."""
    return lambda size: dataclasses.replace(make_budget(size), teacher_learning_rate=5e-5, teacher_train_examples=4000)


# curve -> (task, student, sizes, budget factory); the learning rate is the one the student's default cell chose for
# CE. The largest size of each curve is that cell's data and steps, so the resnet-tiny, layers3 and minilm3 curves
# (one size or two) rerun today's quality cells at this protocol.
CURVES: dict[str, tuple[str, str, tuple[int, ...], Callable[[int], Budget]]] = {
    "vit-tiny": ("fashion_mnist", "vit-tiny", (500, 1000, 2000, 8000), image_budget("vit-tiny", 1e-3)),
    "resnet-tiny": ("fashion_mnist", "resnet-tiny", (500, 8000), image_budget("resnet-tiny", 2e-3)),
    "narrow": ("sst2", "narrow", (1000, 2000, 4000, 16000), text_budget("narrow", 5e-4)),
    "layers3": ("sst2", "layers3", (1000, 4000), text_budget("layers3", 2e-4)),
    "minilm3": ("sst2", "minilm3", (4000,), text_budget("minilm3", 2e-4)),
    "minilm3-mpnet": ("sst2_mpnet", "minilm3", (4000,), mpnet_teacher(text_budget("minilm3", 2e-4))),
}
# Longer-budget curves: (the curve they lengthen, their sizes, their optimizer steps as a multiple of that curve's).
LONGER_CURVES: dict[str, tuple[str, tuple[int, ...], int]] = {
    "layers3-x4": ("layers3", (1000,), 4),
    "minilm3-x4": ("minilm3", (1000,), 4),
    "narrow-x4": ("narrow", (1000,), 4),
    "vit-tiny-x4": ("vit-tiny", (500,), 4),
    "resnet-tiny-x4": ("resnet-tiny", (500,), 4),
}
CURVES.update(
    {
        name: (CURVES[base][0], CURVES[base][1], sizes, longer(CURVES[base][3], multiple))
        for name, (base, sizes, multiple) in LONGER_CURVES.items()
    }
)


def method_settings(method: str) -> dict[str, Any]:
    """A method's settings as a run records them: what differs from the library's defaults."""
    return without_defaults(METHODS[method])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curves", nargs="+", default=list(CURVES), choices=list(CURVES))
    parser.add_argument("--sizes", nargs="+", type=int, default=None, help="Only these sizes (default: all).")
    parser.add_argument("--methods", nargs="+", default=list(CURVE_METHODS), choices=list(METHODS))
    add_run_arguments(parser, os.path.join(HERE, "results_curves"))
    parser.add_argument(
        "--mpnet_dir",
        default=DEFAULT_MPNET_DIR,
        help="all-mpnet-base-v2 folder for the minilm3-mpnet curve's teacher (made by scripts/fetch_mpnet.py).",
    )
    cli = parser.parse_args()
    os.makedirs(os.path.join(cli.output_dir, "cells"), exist_ok=True)
    if cli.report_only:
        print(write_curve_report(cli.output_dir))
        return

    tokenizer, cache_root = prepare_runs(cli.threads, "curve_cache_", cli.cache_dir)
    for curve in cli.curves:
        task, student, sizes, make_budget = CURVES[curve]
        multiple = LONGER_CURVES[curve][2] if curve in LONGER_CURVES else 1
        for size in [s for s in sizes if cli.sizes is None or s in cli.sizes]:
            started = time.perf_counter()
            budget = make_budget(size)
            cell = prepare_cell(task, budget, cli.data_dir, cli.work_dir, tokenizer, cli.mpnet_dir)
            header = {
                "suite": "curve",
                "task": task,
                "student": student,
                "train_examples": size,
                "steps_multiple": multiple,
                "budget": {**vars(budget), "optimizer_steps": budget.optimizer_steps},
                "teacher": cell.teacher_scores,
                "defaults": setting_defaults(),
                "environment": environment(),
                "arguments": sys.argv[1:],
            }
            suffix = f"__x{multiple}" if multiple != 1 else ""
            path = os.path.join(cli.output_dir, "cells", f"{task}__{student}__{size}{suffix}.json")
            recorder = CellRecorder(path, header, resume=True, expected_settings=method_settings)
            (learning_rate,) = budget.student_learning_rates[student]
            runs = CellRuns(task, budget, cell.splits, cell.teacher, student, cache_root, cell.collator)
            for seed in cli.seeds:
                for method in cli.methods:
                    settings = method_settings(method)
                    key = {"method": method, "phase": "final", "seed": seed, "settings": settings}
                    key["learning_rate"] = learning_rate
                    record = recorder.run(key, runs.trainer(settings, learning_rate, seed))
                    print(
                        f"{student} {size} {method} seed {seed}: eval {record['eval']:.4f} "
                        f"({record['train_seconds']:.0f} s)",
                        flush=True,
                    )
            recorder.save(minutes=(time.perf_counter() - started) / 60)
    print(write_curve_report(cli.output_dir))


if __name__ == "__main__":
    main()
