"""A teacher with its own tokenizer: real SST-2 sentences tokenized once for the student (MiniLM's WordPiece) and
once for the teacher (a byte-pair vocabulary trained on the same sentences), tiny random-init models."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_bert
from test_trainer_text import TERMS, trainer_settings, training_logs

from hf_wcord import DistillationDataCollator, WCoRDConfig, WCoRDTrainer, tokenize_for_teacher
from hf_wcord.teacher_cache import dataset_fingerprint


@pytest.fixture(scope="module")
def two_tokenizations(sst2_train, teacher_tokenizer):
    """The fixture's SST-2 rows with the student's columns and the teacher's `teacher_*` columns."""
    return sst2_train.map(
        lambda batch: tokenize_for_teacher(teacher_tokenizer, [batch["sentence"]], max_length=48), batched=True
    )


def make_cross_trainer(tmp_path, tokenizer, teacher_tokenizer, dataset, **overrides):
    teacher = tiny_bert(64, 4, vocab_size=len(teacher_tokenizer), seed=2)
    with torch.no_grad():
        teacher.classifier.weight.mul_(30)  # confident, input-dependent teacher logits: a KD target worth matching
    return WCoRDTrainer(
        model=tiny_bert(32, 2, seed=1),
        teacher_model=teacher,
        args=WCoRDConfig(**trainer_settings(tmp_path, **overrides)),
        train_dataset=dataset,
        processing_class=tokenizer,
        teacher_processing_class=teacher_tokenizer,
    )


def test_the_tokenizers_differ(tokenizer, teacher_tokenizer):
    sentence = "a gripping , moving film"
    assert tokenizer(sentence)["input_ids"] != teacher_tokenizer(sentence)["input_ids"]
    assert len(teacher_tokenizer) < 1000 < len(tokenizer)


def test_each_model_reads_its_own_tokenization_of_the_same_text(
    tmp_path, tokenizer, teacher_tokenizer, two_tokenizations
):
    trainer = make_cross_trainer(tmp_path, tokenizer, teacher_tokenizer, two_tokenizations, max_steps=2)
    seen = {}

    def recorder(name):
        def hook(module, args, kwargs, output):
            seen.setdefault(name, kwargs)

        return hook

    trainer.model.register_forward_hook(recorder("student"), with_kwargs=True)
    trainer.teacher_model.register_forward_hook(recorder("teacher"), with_kwargs=True)
    trainer.train()
    student, teacher = seen["student"], seen["teacher"]
    assert not any(name.startswith("teacher_") for name in student) and "labels" not in teacher
    assert int(teacher["input_ids"].max()) < len(teacher_tokenizer)
    squash = "".join
    for row in range(len(student["input_ids"])):
        student_text = tokenizer.decode(student["input_ids"][row], skip_special_tokens=True)
        teacher_text = teacher_tokenizer.decode(teacher["input_ids"][row], skip_special_tokens=True)
        assert squash(student_text.split()) == squash(teacher_text.split()), (student_text, teacher_text)
        padding = teacher["input_ids"][row] == teacher_tokenizer.pad_token_id
        assert torch.equal(teacher["attention_mask"][row].bool(), ~padding), "the teacher's own attention mask"


def test_the_loss_terms_fall_across_tokenizers(tmp_path, tokenizer, teacher_tokenizer, two_tokenizations):
    trainer = make_cross_trainer(tmp_path, tokenizer, teacher_tokenizer, two_tokenizations, max_steps=40)
    trainer.train()
    logs = training_logs(trainer)
    assert all(math.isfinite(entry[term]) for entry in logs for term in TERMS)
    first, last = logs[0], logs[-1]
    assert last["loss_local"] < first["loss_local"]
    assert last["loss_global"] < first["loss_global"]
    # The tiny random teacher's logits are nearly uniform (KD starts near 0.002), so CE and the representation terms
    # outweigh KD's pull: KD alone must bring the student to the teacher read in its own tokenization.
    kd_only = make_cross_trainer(
        tmp_path,
        tokenizer,
        teacher_tokenizer,
        two_tokenizations,
        max_steps=40,
        alpha_ce=0.0,
        lambda_global=0.0,
        lambda_local=0.0,
    )
    kd_only.train()
    kd_logs = training_logs(kd_only)
    assert kd_logs[-1]["loss_kd"] < kd_logs[0]["loss_kd"]


def test_teacher_features_are_pooled_with_the_teachers_own_mask(
    tmp_path, tokenizer, teacher_tokenizer, two_tokenizations
):
    trainer = make_cross_trainer(tmp_path, tokenizer, teacher_tokenizer, two_tokenizations, max_steps=1)
    collator = trainer._get_collator_with_removed_columns(trainer.data_collator, "training")
    inputs = trainer._prepare_inputs(collator([two_tokenizations[i] for i in range(8)]))
    assert inputs["input_ids"].shape[1] != inputs["teacher_input_ids"].shape[1]
    with torch.no_grad():
        student_outputs = trainer.model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], output_hidden_states=True
        )
        teacher_outputs = trainer._teacher_outputs(inputs, None, "cpu", True)
        teacher_features, _ = trainer._pooled_features(inputs, student_outputs, teacher_outputs)
        last, mask = teacher_outputs.hidden_states[-1], inputs["teacher_attention_mask"].unsqueeze(-1).float()
        expected = (last * mask).sum(1) / mask.sum(1)
    assert torch.allclose(teacher_features[0], expected, atol=1e-6)


def test_the_teacher_cache_keys_on_the_teachers_tokenization(
    tmp_path, tokenizer, teacher_tokenizer, sst2_train, two_tokenizations
):
    trainer = make_cross_trainer(
        tmp_path, tokenizer, teacher_tokenizer, two_tokenizations, teacher_cache=str(tmp_path / "cache"), max_steps=4
    )
    calls = []
    trainer.teacher_model.register_forward_hook(lambda *args: calls.append(1))
    trainer.train()
    assert not calls and all(math.isfinite(entry["loss_kd"]) for entry in training_logs(trainer))
    reference = dataset_fingerprint(two_tokenizations)
    other_student = two_tokenizations.map(lambda row: {"input_ids": row["input_ids"][:8]})
    assert dataset_fingerprint(other_student) == reference, "the student's tokenization is not the teacher's input"
    shorter = sst2_train.map(
        lambda batch: tokenize_for_teacher(teacher_tokenizer, [batch["sentence"]], max_length=8), batched=True
    )
    assert dataset_fingerprint(shorter) != reference


def test_different_vocabularies_without_teacher_inputs_say_how_to_give_them(
    tmp_path, tokenizer, teacher_tokenizer, sst2_train
):
    with pytest.raises(ValueError, match="teacher_input_ids.*teacher_processing_class"):
        make_cross_trainer(tmp_path, tokenizer, teacher_tokenizer, sst2_train)


def test_the_collator_pads_each_side_with_its_own_tokenizer(tokenizer, teacher_tokenizer, two_tokenizations):
    rows = two_tokenizations.remove_columns("sentence")
    batch = DistillationDataCollator(tokenizer, teacher_tokenizer)([rows[i] for i in range(4)])
    student_pad = batch["input_ids"][batch["attention_mask"] == 0]
    teacher_pad = batch["teacher_input_ids"][batch["teacher_attention_mask"] == 0]
    assert (student_pad == tokenizer.pad_token_id).all() and (teacher_pad == teacher_tokenizer.pad_token_id).all()
    assert batch["labels"].shape == (4,) and batch["idx"].tolist() == [0, 1, 2, 3]
