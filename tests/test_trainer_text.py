"""WCoRDTrainer on real SST-2 rows with tiny random-init BERT teacher and student of different widths."""

import json
import math
import os

import pytest
import torch
from conftest import tiny_bert
from safetensors import safe_open
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from hf_wcord import WCoRDConfig, WCoRDTrainer
from hf_wcord.trainer import DISTILLER_STATE_NAME

TERMS = ("loss_ce", "loss_kd", "loss_global", "loss_local")


def trainer_settings(tmp_path, **overrides):
    """The `WCoRDConfig` arguments of the tests' short runs."""
    return {
        "output_dir": str(tmp_path / "run"),
        "per_device_train_batch_size": 16,
        "learning_rate": 1e-3,
        "max_steps": 30,
        "logging_steps": 5,
        "num_negatives": 128,
        "report_to": "none",
        "save_strategy": "no",
        "seed": 0,
        "data_seed": 0,
        "disable_tqdm": True,
        **overrides,
    }


def make_trainer(tmp_path, tokenizer, train_dataset, trainer_class=WCoRDTrainer, **overrides):
    return trainer_class(
        model=tiny_bert(32, 2, seed=1),
        teacher_model=tiny_bert(64, 4, seed=2),
        args=WCoRDConfig(**trainer_settings(tmp_path, **overrides)),
        train_dataset=train_dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
    )


def training_logs(trainer):
    return [entry for entry in trainer.state.log_history if "loss" in entry]


@pytest.mark.parametrize("negatives_source", ["bank", "queue"])
def test_every_term_is_finite_logged_and_the_loss_goes_down(tmp_path, tokenizer, sst2_train, negatives_source):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, negatives_source=negatives_source, max_steps=40)
    trainer.train()
    logs = training_logs(trainer)
    assert len(logs) == 8
    for entry in logs:
        for term in TERMS:
            assert math.isfinite(entry[term]), (term, entry)
    first, last = logs[0], logs[-1]
    assert last["loss_local"] < first["loss_local"]
    assert last["loss_ce"] + last["loss_kd"] < first["loss_ce"] + first["loss_kd"] + 0.05
    # Below the chance level of the contrastive task against 128 real negatives.
    assert last["loss_global"] < math.log(129) - 0.5


def test_evaluation_runs_the_student_alone_with_the_index_column_present(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=5)
    trainer.train()
    metrics = trainer.evaluate(sst2_train.select(range(64)))
    assert math.isfinite(metrics["eval_loss"])


def test_resume_from_checkpoint_continues_exactly(tmp_path, tokenizer, sst2_train):
    common = {"max_steps": 16, "logging_steps": 1, "save_strategy": "steps", "save_steps": 8}
    uninterrupted = make_trainer(tmp_path / "a", tokenizer, sst2_train, **common)
    uninterrupted.train()
    checkpoint = tmp_path / "a" / "run" / "checkpoint-8"
    assert (checkpoint / DISTILLER_STATE_NAME).is_file()

    resumed = make_trainer(tmp_path / "b", tokenizer, sst2_train, **common)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    expected = {entry["step"]: entry for entry in training_logs(uninterrupted) if entry["step"] > 8}
    actual = {entry["step"]: entry for entry in training_logs(resumed) if entry["step"] > 8}
    assert sorted(actual) == list(range(9, 17))
    for step, entry in expected.items():
        for key in ("loss",) + TERMS:
            assert actual[step][key] == pytest.approx(entry[key], rel=1e-4, abs=1e-6), (step, key)
    for name, tensor in uninterrupted.distiller.state_dict().items():
        assert torch.allclose(tensor, resumed.distiller.state_dict()[name], atol=1e-5), name


def test_saved_student_loads_with_auto_classes_and_holds_nothing_else(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=4)
    trainer.train()
    output = tmp_path / "student"
    trainer.save_model(str(output))
    reloaded = AutoModelForSequenceClassification.from_pretrained(output)
    student_keys = set(trainer.model.state_dict())
    with safe_open(str(output / "model.safetensors"), framework="pt") as weights:
        saved_keys = set(weights.keys())
    assert saved_keys <= student_keys
    assert not any(word in key for key in saved_keys for word in ("head", "memory", "queue", "teacher"))
    assert reloaded.config.hidden_size == 32 and reloaded.config.num_hidden_layers == 2
    assert not (output / DISTILLER_STATE_NAME).exists()
    card = (output / "README.md").read_text()
    assert "WCoRD" in card and "| lambda_global | 0.05 |" in card and "| alpha_kd | 1.0 |" in card
    assert "teacher" in card.lower()
    batch = tokenizer(["a gripping, moving film"], return_tensors="pt")
    trainer.model.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, trainer.model(**batch.to(trainer.model.device)).logits)


def test_a_subclass_adds_its_own_logged_term(tmp_path, tokenizer, sst2_train):
    class WithLogitNorm(WCoRDTrainer):
        def compute_loss_terms(self, inputs, student_outputs, teacher_outputs, index):
            terms = super().compute_loss_terms(inputs, student_outputs, teacher_outputs, index)
            terms["logit_norm"] = 0.01 * student_outputs.logits.float().pow(2).mean()
            return terms

    trainer = make_trainer(tmp_path, tokenizer, sst2_train, trainer_class=WithLogitNorm, max_steps=5)
    trainer.train()
    assert all("loss_logit_norm" in entry for entry in training_logs(trainer))


def test_bank_without_index_column_is_a_clear_error(tmp_path, tokenizer, sst2_train):
    with pytest.raises(ValueError, match="no 'idx' column.*negatives_source='queue'"):
        make_trainer(tmp_path, tokenizer, sst2_train.remove_columns("idx"), negatives_source="bank")


def test_auto_negatives_fall_back_to_a_queue_without_index(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train.remove_columns("idx"), max_steps=3)
    assert not trainer.distiller.uses_bank
    trainer.train()


def test_heads_get_their_own_learning_rate_and_checkpoint_records_layer_pairs(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(
        tmp_path,
        tokenizer,
        sst2_train,
        head_learning_rate=5e-3,
        max_steps=2,
        save_strategy="steps",
        save_steps=2,
        layer_map="uniform",
    )
    trainer.train()
    head_params = {id(p) for p in trainer.distiller.parameters()}
    groups = [g for g in trainer.optimizer.param_groups if any(id(p) in head_params for p in g["params"])]
    assert len(groups) == 1 and groups[0]["initial_lr"] == 5e-3
    with safe_open(os.path.join(trainer.args.output_dir, "checkpoint-2", DISTILLER_STATE_NAME), "pt") as state:
        assert json.loads(state.metadata()["layer_pairs"]) == [[2, 1], [4, 2]]
