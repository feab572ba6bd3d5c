"""Crash-safe resume, clear errors for bad input, mixed precision, and safe loading."""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_bert
from safetensors.torch import load_file
from test_trainer_text import TERMS, make_trainer, training_logs

from hf_wcord.trainer import DISTILLER_STATE_NAME

WORKER = Path(__file__).with_name("resume_worker.py")


def run_worker(data_dir, output_dir, *flags, wait=True):
    command = [sys.executable, str(WORKER), str(data_dir), str(output_dir), *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def test_sigkilled_run_resumes_to_the_same_student_and_metrics(data_dir, tmp_path):
    reference = tmp_path / "reference"
    run_worker(data_dir, reference)

    crashed = tmp_path / "crashed"
    process = run_worker(data_dir, crashed, "--slow", wait=False)
    deadline = time.time() + 240
    while not (crashed / "checkpoint-6" / "trainer_state.json").exists():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.time() < deadline, "the run never reached its third checkpoint"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (crashed / "final").exists(), "the run was killed before it finished"
    # A save cut short by the kill: the folder exists but its trainer_state.json was never written.
    interrupted = crashed / "checkpoint-100"
    shutil.copytree(crashed / "checkpoint-6", interrupted)
    (interrupted / "trainer_state.json").unlink()

    resumed = run_worker(data_dir, crashed, "--resume")
    assert "Skipping" in resumed.stdout + resumed.stderr and "checkpoint-100" in resumed.stdout + resumed.stderr
    expected = load_file(reference / "final" / "model.safetensors")
    actual = load_file(crashed / "final" / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert json.loads((crashed / "final" / "metrics.json").read_text())["eval_loss"] == pytest.approx(
        json.loads((reference / "final" / "metrics.json").read_text())["eval_loss"], abs=1e-7
    )


def test_explicit_resume_from_an_interrupted_checkpoint_is_refused(tmp_path, tokenizer, sst2_train):
    broken = tmp_path / "run" / "checkpoint-3"
    broken.mkdir(parents=True)
    trainer = make_trainer(tmp_path, tokenizer, sst2_train)
    with pytest.raises(ValueError, match="incomplete.*trainer_state.json"):
        trainer.train(resume_from_checkpoint=str(broken))
    with pytest.raises(ValueError, match="no complete checkpoint"):
        trainer.train(resume_from_checkpoint=True)


# ---- Bad input: a clear error before training, naming the problem and the fix ----


def test_teacher_and_student_vocabularies_differ(tmp_path, tokenizer, sst2_train):
    from hf_wcord import WCoRDConfig, WCoRDTrainer

    with pytest.raises(
        ValueError, match=r"vocabularies differ \(30522 vs 1000 tokens\).*teacher_input_ids.*teacher_processing_class"
    ):
        WCoRDTrainer(
            model=tiny_bert(32, 2, vocab_size=1000),
            teacher_model=tiny_bert(32, 2),
            args=WCoRDConfig(output_dir=str(tmp_path), report_to="none"),
            train_dataset=sst2_train,
        )


def test_teacher_and_student_label_counts_differ(tmp_path, sst2_train):
    from hf_wcord import WCoRDConfig, WCoRDTrainer

    with pytest.raises(ValueError, match="teacher predicts 3 labels but the student 2.*num_labels=3"):
        WCoRDTrainer(
            model=tiny_bert(32, 2),
            teacher_model=tiny_bert(32, 2, num_labels=3),
            args=WCoRDConfig(output_dir=str(tmp_path), report_to="none"),
            train_dataset=sst2_train,
        )


def test_regression_student_with_a_classification_teacher(tmp_path, sst2_train):
    from hf_wcord import WCoRDConfig, WCoRDTrainer

    student = tiny_bert(32, 2, num_labels=1)
    teacher = tiny_bert(32, 2, num_labels=2)
    student.config.problem_type = "regression"
    with pytest.raises(ValueError, match="regression model and the other a classifier"):
        WCoRDTrainer(
            model=student,
            teacher_model=teacher,
            args=WCoRDConfig(output_dir=str(tmp_path), report_to="none"),
            train_dataset=sst2_train,
        )


def test_layer_map_naming_a_missing_layer(tmp_path, tokenizer, sst2_train):
    with pytest.raises(ValueError, match="student hidden state 7.*only 3 hidden states"):
        make_trainer(tmp_path, tokenizer, sst2_train, layer_map="4:7")


def test_more_negatives_than_the_dataset_holds(tmp_path, tokenizer, sst2_train):
    with pytest.raises(ValueError, match="num_negatives=4096.*511 other examples.*below 512"):
        make_trainer(tmp_path, tokenizer, sst2_train, num_negatives=4096)


def test_default_negatives_adapt_to_a_small_dataset(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, num_negatives=None)
    assert trainer.distiller.num_negatives == len(sst2_train) - 1


def test_empty_training_set(tmp_path, tokenizer, sst2_train):
    with pytest.raises(ValueError, match="`train_dataset` is empty"):
        make_trainer(tmp_path, tokenizer, sst2_train.select([]))


def test_non_finite_inputs_stop_training_naming_the_column(tmp_path, tokenizer, sst2_train):
    from transformers import DataCollatorWithPadding

    from hf_wcord import WCoRDConfig, WCoRDTrainer

    scores = sst2_train.map(lambda row, i: {"label": float("nan") if i == 3 else 2.5}, with_indices=True)
    trainer = WCoRDTrainer(
        model=tiny_bert(32, 2, num_labels=1),
        teacher_model=tiny_bert(32, 2, num_labels=1, seed=4),
        args=WCoRDConfig(output_dir=str(tmp_path), report_to="none", max_steps=3, per_device_train_batch_size=8),
        train_dataset=scores.select(range(16)),
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    with pytest.raises(ValueError, match=r"NaN or infinite values in \['labels'\].*dataset.filter"):
        trainer.train()


def test_a_term_turning_non_finite_stops_training_naming_it(tmp_path, tokenizer, sst2_train):
    from hf_wcord import WCoRDTrainer

    class Diverging(WCoRDTrainer):
        def compute_loss_terms(self, *args, **kwargs):
            terms = super().compute_loss_terms(*args, **kwargs)
            if self.state.global_step == 2:
                terms["local"] = terms["local"] * float("inf")
            return terms

    trainer = make_trainer(tmp_path, tokenizer, sst2_train, trainer_class=Diverging)
    with pytest.raises(FloatingPointError, match=r"The local loss term became non-finite .* at step 2"):
        trainer.train()


def test_trainable_teacher_is_frozen_with_a_warning(tmp_path, tokenizer, sst2_train, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_wcord"):
        trainer = make_trainer(tmp_path, tokenizer, sst2_train)
    assert "trainable parameters; they are now frozen" in caplog.text
    teacher = trainer.accelerator.unwrap_model(trainer.teacher_model)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training


def test_batch_size_one_keeps_every_term_finite(tmp_path, tokenizer, sst2_train):
    """With one example per batch the local term transports one point onto one point (its cost 1 - cos) and the
    standardiser uses its running statistics: training goes on, every term finite."""
    trainer = make_trainer(
        tmp_path, tokenizer, sst2_train, per_device_train_batch_size=1, max_steps=6, logging_steps=2
    )
    trainer.train()
    assert all(math.isfinite(entry[term]) for entry in training_logs(trainer) for term in TERMS)


# ---- Mixed precision ----


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_keeps_every_term_finite_and_in_fp32(precision, tmp_path, tokenizer, sst2_train):
    settings = {precision: True, "use_cpu": not torch.cuda.is_available(), "max_steps": 200, "logging_steps": 20}
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, **settings)
    captured = {}
    original = trainer.compute_loss_terms

    def spy(*args, **kwargs):
        terms = original(*args, **kwargs)
        captured.update({name: value.dtype for name, value in terms.items()})
        return terms

    trainer.compute_loss_terms = spy
    trainer.train()
    logs = training_logs(trainer)
    assert len(logs) == 10
    assert all(math.isfinite(entry[term]) for entry in logs for term in TERMS)
    assert captured == dict.fromkeys(("ce", "kd", "global", "local"), torch.float32)


# ---- Safe loading ----


class _WritesAFile:
    """A pickle that, if unpickled without `weights_only=True`, would create a file: stands in for malicious code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def test_a_checkpoint_from_an_untrusted_source_cannot_run_code(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=2, save_strategy="steps", save_steps=2)
    trainer.train()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    marker = tmp_path / "code_ran"
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.save(_WritesAFile(marker), checkpoint / name)
    resumed = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=4, save_strategy="steps", save_steps=2)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        resumed.train(resume_from_checkpoint=str(checkpoint))
    assert not marker.exists()
    with open(checkpoint / DISTILLER_STATE_NAME, "rb") as handle:
        assert b"\x80" not in handle.read(8), "the distiller state is safetensors (a JSON header), not a pickle"


def test_remote_code_runs_only_when_asked(tmp_path):
    from examples_loader import load_example
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path / "custom"
    tiny_bert(32, 1).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "code_ran"
    (folder / "modeling_custom.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    for script, arguments in (
        ("run_glue_distill", "DistillationModelArguments"),
        ("run_glue_teacher", "TeacherModelArguments"),
    ):
        defaults = getattr(load_example(script), arguments).__dataclass_fields__
        assert defaults["trust_remote_code"].default is False
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=False)
    assert type(model).__module__.startswith("transformers.") and not marker.exists()
    with pytest.raises(Exception):  # noqa: B017 - the repository's module lacks the class; it was imported first
        AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    assert marker.exists(), "with trust_remote_code=True the repository's code does run: the check above is real"
