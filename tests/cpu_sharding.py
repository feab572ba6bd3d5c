"""Run FSDP 2 and DeepSpeed ZeRO-3 on CPU processes, for the tests.

Accelerate turns FSDP and DeepSpeed on only where it finds an accelerator, although torch's `fully_shard` (gloo)
and DeepSpeed's CPU accelerator work on CPU processes. The two functions below make Accelerate take CPU processes
for what it needs; the trainer, Accelerate, torch and DeepSpeed then run their own code paths unchanged.

As a script, it runs an example under one of them:

    accelerate launch --config_file examples/accelerate_configs/multi_cpu.yaml tests/cpu_sharding.py \\
        fsdp examples/run_glue_distill.py ... --fsdp full_shard --fsdp_config fsdp.json --use_cpu
    accelerate launch --config_file examples/accelerate_configs/multi_cpu.yaml tests/cpu_sharding.py \\
        zero3 examples/run_glue_distill.py ... --deepspeed ds_config.json
"""

from __future__ import annotations

import runpy
import sys

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType


def allow_fsdp_on_cpu_processes() -> None:
    """Accelerate only switches a multi-GPU (or other accelerator) run to FSDP, never a multi-CPU one: present the
    multi-CPU run as multi-GPU while it decides, after which the state says FSDP (device: CPU) for the whole run."""
    initialise = AcceleratorState.__init__

    def initialise_as_fsdp(self: AcceleratorState, *args, **kwargs) -> None:
        if PartialState._shared_state.get("distributed_type") == DistributedType.MULTI_CPU:
            PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU
        initialise(self, *args, **kwargs)

    AcceleratorState.__init__ = initialise_as_fsdp


def allow_deepspeed_on_cpu_processes() -> None:
    """Accelerate sets a process group up for DeepSpeed only where it finds an accelerator, and otherwise counts one
    process while DeepSpeed (CPU accelerator, gloo) counts them all: make it choose the backend as for CPU
    processes (gloo), after which DeepSpeed initialises the group. Launch without `--use_cpu` (with it, Accelerate
    does not start DeepSpeed)."""
    prepare_backend = PartialState._prepare_backend

    def prepare_cpu_backend(self: PartialState, cpu: bool = False, sagemaker_dp: bool = False, backend=None):
        return prepare_backend(self, True, sagemaker_dp, backend)

    PartialState._prepare_backend = prepare_cpu_backend


SHARDINGS = {"fsdp": allow_fsdp_on_cpu_processes, "zero3": allow_deepspeed_on_cpu_processes}

if __name__ == "__main__":
    sharding, script, *arguments = sys.argv[1:]
    SHARDINGS[sharding]()
    sys.argv = [script, *arguments]
    runpy.run_path(script, run_name="__main__")
