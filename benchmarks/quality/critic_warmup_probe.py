"""How long the critic warm-up must be: what the critic knows after 0 to 800 warm-up steps on a real cell's filled
feature bank, and what the steps cost.

For each student, the trainer of a learning-curve cell (selection seed, never a reported one) fills its feature bank
and fits the standardisers as `train()` does; the heads are then trained alone in chunks, and after each chunk the
critic is scored on a fixed set of 256 anchors with their own negatives: per direction, the share of anchors whose
positive beats every negative, and the positive's mean softmax probability (chance: 1 / (K + 1)).

    python benchmarks/quality/critic_warmup_probe.py --students vit-tiny narrow --size 1000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch
from cells import DEFAULT_DATA, make_student, minilm_folder, prepare_cell
from protocol import SELECTION_SEED
from run_curves import CURVES
from run_quality import environment

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINTS = (0, 50, 100, 200, 400)


def probe(curve: str, size: int, data_dir: str, work_dir: str, learning_rate: float | None) -> dict:
    from transformers import AutoTokenizer

    from hf_wcord import WCoRDConfig, WCoRDTrainer
    from hf_wcord.critic_warmup import critic_loss, warm_up_critic

    task, student_name, _, make_budget = CURVES[curve]
    budget = make_budget(size)
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    cell = prepare_cell(task, budget, data_dir, work_dir, tokenizer)
    splits, teacher = cell.splits, cell.teacher
    args = WCoRDConfig(
        output_dir=tempfile.mkdtemp(prefix="probe_"),
        per_device_train_batch_size=budget.batch_size,
        per_device_eval_batch_size=256,
        report_to="none",
        disable_tqdm=True,
        seed=SELECTION_SEED,
        remove_unused_columns=task == "sst2",
    )
    trainer = WCoRDTrainer(
        model=make_student(task, student_name, teacher, SELECTION_SEED),
        teacher_model=teacher,
        args=args,
        train_dataset=splits["train"],
        data_collator=cell.collator,
    )
    started = time.perf_counter()
    trainer.warm_negative_stores()
    distiller = trainer.distiller
    distiller.fit_standardizers()
    fill_seconds = time.perf_counter() - started
    anchors = torch.randperm(size, generator=torch.Generator().manual_seed(0))[:256]
    points, done, seconds = [], 0, 0.0
    for checkpoint in CHECKPOINTS:
        if checkpoint > done:
            started = time.perf_counter()
            warm_up_critic(
                distiller,
                checkpoint - done,
                budget.batch_size,
                learning_rate or args.critic_warmup_learning_rate,
                done,
            )
            seconds += time.perf_counter() - started
            done = checkpoint
        torch.manual_seed(1)
        with torch.no_grad():
            _, diagnostics = critic_loss(distiller, anchors)
        point = {"steps": checkpoint, "seconds": seconds, **{k: v.item() for k, v in diagnostics.items()}}
        points.append(point)
        print(student_name, json.dumps(point), flush=True)
    return {
        "student": student_name,
        "task": task,
        "train_examples": size,
        "num_negatives": distiller.num_negatives,
        "batch_size": budget.batch_size,
        "fill_seconds": fill_seconds,
        "learning_rate": learning_rate or args.critic_warmup_learning_rate,
        "points": points,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", nargs="+", default=["vit-tiny", "narrow"], choices=["vit-tiny", "narrow"])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument(
        "--work_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "hf_wcord_quality", "default")
    )
    parser.add_argument("--output", default=os.path.join(HERE, "results_curves", "critic_warmup.json"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--learning_rates", nargs="+", type=float, default=[None], help="Default: the config's.")
    cli = parser.parse_args()
    if cli.threads:
        torch.set_num_threads(cli.threads)
    started = time.perf_counter()
    results = [
        probe(student, cli.size, cli.data_dir, cli.work_dir, learning_rate)
        for student in cli.students
        for learning_rate in cli.learning_rates
    ]
    payload = {"probes": results, "environment": environment(), "minutes": (time.perf_counter() - started) / 60}
    with open(cli.output, "w") as handle:
        json.dump(payload, handle, indent=2)


if __name__ == "__main__":
    main()
