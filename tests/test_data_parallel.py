"""Data parallelism, FSDP 2 and DeepSpeed ZeRO-3 on two CPU processes (gloo), launched with the README's multi-CPU
accelerate config: the same student and heads as one process at the same global batch, and the heads synchronised
once per optimizer step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from examples_loader import MULTI_CPU_CONFIG
from safetensors.torch import load_file

WORKER = Path(__file__).resolve().parent / "data_parallel_worker.py"


def run_worker(data_dir: Path, output_dir: Path, processes: int, *flags: str) -> dict:
    if processes == 1:
        command = [sys.executable, str(WORKER)]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(MULTI_CPU_CONFIG)]
        command += ["--num_processes", str(processes), str(WORKER)]
    # DeepSpeed takes CPU processes without `use_cpu` (with it, Accelerate would not start DeepSpeed).
    use_cpu = processes > 1 and "--zero3" not in flags
    command += [str(data_dir), str(output_dir), *flags, *(["--use_cpu"] if use_cpu else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-4000:]
    return json.loads((output_dir / "run.json").read_text())


def assert_same_weights(first: Path, second: Path, atol: float) -> None:
    one, two = load_file(str(first)), load_file(str(second))
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=atol, msg=name)


@pytest.fixture(scope="module")
def one_process_run(data_dir, tmp_path_factory) -> Path:
    """The reference: one process at batch 8."""
    output_dir = tmp_path_factory.mktemp("one")
    run = run_worker(data_dir, output_dir, 1, "--batch_size", "8")
    assert run["student_share"] == run["teacher_share"] == 1.0
    return output_dir


HEADS_IN_STUDENT_OPTIMIZER = {
    "head_groups": 1,
    "scheduled_groups": True,
    "own_head_optimizer": False,
    "head_learning_rate": 0.0,
    "student_learning_rate": 0.0,
}


def assert_same_run(first: Path, second: Path) -> None:
    # Measured difference: about 3e-6 (float summation order); a missing or doubled gradient average is far above.
    for name in ("student", "distiller"):
        assert_same_weights(first / f"{name}.safetensors", second / f"{name}.safetensors", 1e-4)


def test_two_processes_train_the_same_student_and_heads_as_one_at_the_same_global_batch(
    data_dir, one_process_run, tmp_path
):
    run = run_worker(data_dir, tmp_path / "two", 2, "--batch_size", "4")
    expected = {"head_syncs": 4, "optimizer_steps": 4, "student_share": 1.0, "teacher_share": 1.0}
    assert run == {**expected, **HEADS_IN_STUDENT_OPTIMIZER}
    assert_same_run(one_process_run, tmp_path / "two")


def test_with_gradient_accumulation_the_heads_sync_once_per_optimizer_step_and_the_gate_agrees(data_dir, tmp_path):
    run = run_worker(data_dir, tmp_path / "acc", 2, "--batch_size", "2", "--accumulation", "2", "--critic_gate")
    # Four optimizer steps of two micro-batches each: four averages, not eight. The run ends with the check that
    # every process holds the same heads, queue and critic gate (it raises otherwise: each process's gate follows
    # the accuracy averaged over the processes' batches).
    assert (run["head_syncs"], run["optimizer_steps"]) == (4, 4)


HEADS_WITH_OWN_OPTIMIZER = {
    "head_groups": 0,
    "own_head_optimizer": True,
    # On the student's schedule: both learning rates at the linear schedule's final 0.
    "head_learning_rate": 0.0,
    "student_learning_rate": 0.0,
}


@pytest.mark.parametrize("sharding", ["--fsdp", "--zero3"])
def test_fsdp_and_zero3_shard_student_and_teacher_and_train_the_same_student_and_heads_as_one_process(
    sharding, data_dir, one_process_run, tmp_path
):
    if sharding == "--zero3":
        pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install -e '.[dev]' installs it)")
    run = run_worker(data_dir, tmp_path / "sharded", 2, "--batch_size", "4", sharding)
    assert (run["head_syncs"], run["optimizer_steps"]) == (4, 4)
    # The sharded student's optimizer holds its own parameters alone (a ZeRO optimizer; FSDP's preparation and
    # optimizer checkpoints): the heads have an optimizer of their own.
    assert {name: run[name] for name in HEADS_WITH_OWN_OPTIMIZER} == HEADS_WITH_OWN_OPTIMIZER
    # Each process holds about half of each model (FSDP: a shard of every tensor; ZeRO-3: a partition of each).
    assert run["student_share"] == pytest.approx(0.5, abs=0.02)
    assert run["teacher_share"] == pytest.approx(0.5, abs=0.02)
    assert_same_run(one_process_run, tmp_path / "sharded")
