"""Import the example scripts (they live outside the package) as modules, or launch them on two processes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MULTI_CPU_CONFIG = EXAMPLES / "accelerate_configs" / "multi_cpu.yaml"


def load_example(name: str):
    """The module `examples/<name>.py`, imported once."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def launch_on_two_cpu_processes(name: str, args: list[str], sharding: str | None = None) -> str:
    """Run `examples/<name>.py` with `accelerate launch` and the README's multi-CPU config file (two processes,
    gloo), under `sharding` ("fsdp" or "zero3", see `cpu_sharding.py`) when given; return its output, failing the
    test with the output's tail when the run fails."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(MULTI_CPU_CONFIG)]
    if sharding is not None:
        command += [str(Path(__file__).resolve().parent / "cpu_sharding.py"), sharding]
    command += [str(EXAMPLES / f"{name}.py"), *args, *([] if sharding == "zero3" else ["--use_cpu"])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    return output
