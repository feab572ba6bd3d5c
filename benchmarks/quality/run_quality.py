"""Quality benchmark: CE, KD, CRD + KD and WCoRD + KD (defaults and tuned), with ablations that undo one WCoRD fix
each, under equal budgets on SST-2 (MiniLM-L6 teacher) and Fashion-MNIST (CNN teacher); and a teacher comparison on
SST-2: the same pretrained 3-layer MiniLM student distilled (CE, KD, WCoRD + KD) from the MiniLM-L6 teacher and from
an all-mpnet-base-v2 teacher with its own tokenizer (`sst2_mpnet`; make the model folder with
`python scripts/fetch_mpnet.py --output_dir ~/.cache/hf_wcord_models/all-mpnet-base-v2`).

Protocol, per (task, student) cell:
1. The student's learning rate is chosen for CE alone on the held-out split (two candidates, selection seed).
2. KD, CRD + KD and WCoRD + KD tuned each choose between two settings (their default first) on the held-out split
   with the selection seed; the methods that add a term to KD keep KD's chosen weight and temperature.
3. Every method then trains with the reported seeds (never the selection seed); mean and std over them.

    python benchmarks/quality/run_quality.py                        # every cell (about 2 hours on 2 CPU cores)
    python benchmarks/quality/run_quality.py --quick                # 15 minutes or less
    python benchmarks/quality/run_quality.py --tasks sst2 --students narrow   # one cell; the others are kept
    python benchmarks/quality/run_quality.py --tasks sst2 sst2_mpnet --students minilm3   # the teacher comparison
    python benchmarks/quality/run_quality.py --report_only          # rebuild results.json/md/png from the cells

Each cell's runs go to `<output_dir>/cells/<task>__<student>.json` as they finish (`--resume` skips the runs that
are there already); `results.json`, `results.md` and `results.png` (needs matplotlib) are rebuilt from every cell.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from typing import Any

from cell_recorder import CellRecorder
from cells import (
    DEFAULT_DATA,
    DEFAULT_MPNET_DIR,
    SUITES,
    TASKS,
    minilm_folder,
    prepare_cell,
)
from protocol import METHODS, REPORTED_SEEDS, SELECTION_SEED, TUNED, methods_for, train_student
from report import setting_defaults, write_report

HERE = os.path.dirname(os.path.abspath(__file__))


def environment() -> dict[str, Any]:
    import datasets
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def prepare_runs(threads: int | None, cache_prefix: str, cache_dir: str | None = None) -> tuple[Any, str]:
    """Set torch's threads and quiet transformers' logs; return the students' tokenizer (MiniLM's) and the folder
    for the teacher caches (`cache_dir`, else a fresh temporary one)."""
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    if threads:
        torch.set_num_threads(threads)
    hf_logging.set_verbosity_error()
    return AutoTokenizer.from_pretrained(minilm_folder()), cache_dir or tempfile.mkdtemp(prefix=cache_prefix)


def add_run_arguments(parser: argparse.ArgumentParser, output_dir: str, teachers: bool = True) -> None:
    """The options the curve, transfer and embedding benchmarks share: seeds, data, output and (with `teachers`)
    trained-teacher folders, torch threads, and rebuilding the report alone."""
    parser.add_argument("--seeds", nargs="+", type=int, default=list(REPORTED_SEEDS))
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--output_dir", default=output_dir)
    if teachers:
        parser.add_argument(
            "--work_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "hf_wcord_quality", "default")
        )
    parser.add_argument(
        "--cache_dir",
        default=None,
        help="Folder of the teacher-output caches, reused by later invocations (default: a fresh temporary one).",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--report_only", action="store_true")


def without_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that differ from WCoRDConfig's defaults (so that equal configurations compare equal)."""
    from hf_wcord import WCoRDConfig

    fields = WCoRDConfig.__dataclass_fields__
    return {name: value for name, value in settings.items() if value != fields[name].default}


def untuned_settings(method: str) -> dict[str, Any] | None:
    """A method's final settings as a run records them, or None for a tuned method (its held-out choice)."""
    return None if method in TUNED else without_defaults(METHODS[method])


def run_cell(
    task: str,
    student: str,
    budget: Any,
    splits: dict[str, Any],
    teacher: Any,
    methods: list[str],
    seeds: list[int],
    recorder: CellRecorder,
    cache_root: str,
    collator: Any,
) -> None:
    def run(method: str, phase: str, seed: int, settings: dict[str, Any], learning_rate: float) -> dict[str, Any]:
        settings = without_defaults(settings)
        key = {"method": method, "phase": phase, "seed": seed, "settings": settings, "learning_rate": learning_rate}

        def train() -> dict[str, Any]:
            return train_student(
                task, budget, splits, teacher, student, settings, learning_rate, seed, cache_root, collator
            )

        record = recorder.run(key, train)
        print(
            f"{task} {student} {method} [{phase} seed {seed}] lr {learning_rate:g} {settings}: "
            f"held-out {record['heldout']:.4f}, eval {record['eval']:.4f} ({record['train_seconds']:.0f} s)",
            flush=True,
        )
        return record

    candidates_lr = budget.student_learning_rates[student]
    tried = [(run("ce", "selection", SELECTION_SEED, METHODS["ce"], lr)["heldout"], lr) for lr in candidates_lr]
    # The first candidate wins ties: max keeps the first of equal scores.
    learning_rate = max(tried, key=lambda item: item[0])[1]
    chosen: dict[str, dict[str, Any]] = {}
    for method in methods:
        settings = dict(METHODS[method])
        if method in TUNED:
            candidates, takes_kd = TUNED[method]
            base = {**settings, **(chosen.get("kd", {}) if takes_kd else {})}
            scored = [
                (run(method, "selection", SELECTION_SEED, {**base, **c}, learning_rate)["heldout"], {**base, **c})
                for c in candidates
            ]
            settings = max(scored, key=lambda item: item[0])[1]
        chosen[method] = {k: v for k, v in settings.items() if k in ("alpha_kd", "kd_temperature")}
        for seed in seeds:
            run(method, "final", seed, settings, learning_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", nargs="+", default=None, choices=TASKS, help="Default: every task of the suite.")
    parser.add_argument("--students", nargs="+", default=None, help="Only these students (default: the suite's).")
    parser.add_argument("--methods", nargs="+", default=None, help="Only these methods (default: the suite's).")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(REPORTED_SEEDS))
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--output_dir", default=None, help="Default: results/ (results_quick/ with --quick) here.")
    parser.add_argument(
        "--work_dir",
        default=os.path.join(os.path.expanduser("~"), ".cache", "hf_wcord_quality"),
        help="Where the trained teachers are kept (and reused by later runs of the same suite).",
    )
    parser.add_argument("--resume", action="store_true", help="Reuse the runs already in the cells' JSON files.")
    parser.add_argument("--report_only", action="store_true", help="Only rebuild the report from the cells.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument(
        "--mpnet_dir",
        default=DEFAULT_MPNET_DIR,
        help="all-mpnet-base-v2 folder for the sst2_mpnet teacher (made by scripts/fetch_mpnet.py).",
    )
    cli = parser.parse_args()
    suite = "quick" if cli.quick else "default"
    output_dir = cli.output_dir or os.path.join(HERE, "results_quick" if cli.quick else "results")
    os.makedirs(os.path.join(output_dir, "cells"), exist_ok=True)
    if cli.report_only:
        print(write_report(output_dir, suite))
        return

    tokenizer, cache_root = prepare_runs(cli.threads, "quality_cache_")
    tasks = cli.tasks or list(SUITES[suite])
    unknown = [task for task in tasks if task not in SUITES[suite]]
    if unknown:
        raise SystemExit(f"The {suite} suite has no task {unknown}: choose among {list(SUITES[suite])}.")
    for task in tasks:
        budget = SUITES[suite][task]
        students = [name for name in budget.students if cli.students is None or name in cli.students]
        if not students:
            continue
        cell = prepare_cell(task, budget, cli.data_dir, os.path.join(cli.work_dir, suite), tokenizer, cli.mpnet_dir)
        teacher, teacher_scores = cell.teacher, cell.teacher_scores
        print(f"{task} teacher: {teacher_scores}", flush=True)
        for student in students:
            started = time.perf_counter()
            header = {
                "suite": suite,
                "task": task,
                "student": student,
                "budget": {**vars(budget), "optimizer_steps": budget.optimizer_steps},
                "teacher": teacher_scores,
                "selection_seed": SELECTION_SEED,
                "defaults": setting_defaults(),
                "environment": environment(),
                "arguments": sys.argv[1:],
            }
            recorder = CellRecorder(
                os.path.join(output_dir, "cells", f"{task}__{student}.json"),
                header,
                cli.resume,
                expected_settings=untuned_settings,
            )
            methods = methods_for(task, student, cli.quick, cli.methods)
            run_cell(
                task, student, budget, cell.splits, teacher, methods, cli.seeds, recorder, cache_root, cell.collator
            )
            recorder.save(minutes=(time.perf_counter() - started) / 60)
    print(write_report(output_dir, suite))


if __name__ == "__main__":
    main()
