"""Training rows without a label: real SST-2 fixture rows, part of them stripped of their labels (or given as a
transfer set), distilled with tiny random-init BERT models."""

import math

import datasets
import numpy as np
import pytest
import torch
from conftest import tiny_bert
from test_trainer_text import make_trainer, trainer_settings, training_logs
from transformers import DataCollatorWithPadding

from hf_wcord import WCoRDConfig, WCoRDTrainer
from hf_wcord.labelled_sampler import LabelledShareSampler
from hf_wcord.losses.memory import negatives_mask
from hf_wcord.model_card import ModelCardInfo
from hf_wcord.unlabeled import UNLABELED, add_transfer_rows, labelled_mask, labelled_task_loss

LABELLED = 64


@pytest.fixture(scope="module")
def labelled(sst2_train):
    """The first 64 fixture rows with their labels, the memory-bank index renumbered."""
    return sst2_train.select(range(LABELLED)).remove_columns(["sentence", "idx"])


@pytest.fixture(scope="module")
def transfer(sst2_train):
    """The other 448 fixture rows, without labels (as a user's unlabeled in-domain text)."""
    return sst2_train.select(range(LABELLED, len(sst2_train))).remove_columns(["sentence", "idx", "label"])


@pytest.fixture(scope="module")
def partly_labelled(labelled, transfer):
    return add_transfer_rows(labelled, transfer)


def collated(tokenizer, dataset, rows):
    return DataCollatorWithPadding(tokenizer)([dataset[i] for i in rows])


def test_transfer_rows_are_appended_unlabeled_with_one_index_per_row(labelled, transfer, partly_labelled):
    assert len(partly_labelled) == len(labelled) + len(transfer)
    assert partly_labelled["idx"] == list(range(len(partly_labelled)))
    labels = partly_labelled["label"]
    assert labels[:LABELLED] == labelled["label"]
    assert set(labels[LABELLED:]) == {UNLABELED}
    assert partly_labelled[LABELLED]["input_ids"] == transfer[0]["input_ids"]


def test_the_task_loss_reads_the_labelled_rows_alone():
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    labels = torch.tensor([2, -1, 0, -100, 1, -1])
    mask = labelled_mask(labels, "single_label_classification")
    assert mask.tolist() == [True, False, True, False, True, False]
    expected = torch.nn.functional.cross_entropy(logits[[0, 2, 4]], labels[[0, 2, 4]])
    loss = labelled_task_loss(logits, labels, mask, "single_label_classification")
    torch.testing.assert_close(loss, expected)
    scores = torch.randn(4, 1)
    targets = torch.tensor([0.5, float("nan"), 4.0, -1.0])  # -1 is a real regression target
    mask = labelled_mask(targets, "regression")
    assert mask.tolist() == [True, False, True, True]
    expected = ((scores.view(-1)[mask] - targets[mask]) ** 2).mean()
    torch.testing.assert_close(labelled_task_loss(scores, targets, mask, "regression"), expected)
    assert labelled_task_loss(logits, torch.full((6,), -1), torch.zeros(6, dtype=torch.bool), "x") is None


class RecordingTrainer(WCoRDTrainer):
    """Keeps the loss terms of the last training batch."""

    def compute_loss_terms(self, *args):
        self.terms = super().compute_loss_terms(*args)
        return self.terms


def test_unlabeled_rows_give_the_student_no_task_loss_gradient(tmp_path, tokenizer, partly_labelled):
    """With CE alone, a batch of labelled and unlabeled rows moves the student exactly as its labelled rows alone."""
    settings = {"alpha_kd": 0.0, "lambda_global": 0.0, "lambda_local": 0.0}
    trainer = make_trainer(tmp_path, tokenizer, partly_labelled, **settings)
    student = trainer.model.train()
    for module in student.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # both passes see the same network
    rows = [0, 1, 2, 3, LABELLED, LABELLED + 1, LABELLED + 2]

    def gradient(rows):
        student.zero_grad()
        trainer.compute_loss(student, collated(tokenizer, partly_labelled, rows)).backward()
        return torch.cat([p.grad.flatten() for p in student.parameters() if p.grad is not None])

    torch.testing.assert_close(gradient(rows), gradient(rows[:4]), rtol=1e-4, atol=1e-6)


def test_a_batch_without_labels_has_no_task_loss_but_every_distillation_term(tmp_path, tokenizer, partly_labelled):
    trainer = make_trainer(tmp_path, tokenizer, partly_labelled, RecordingTrainer, max_steps=1)
    trainer.train()
    batch = trainer._prepare_inputs(collated(tokenizer, partly_labelled, range(LABELLED, LABELLED + 8)))
    loss = trainer.compute_loss(trainer.model.train(), batch)
    assert math.isfinite(loss.item())
    assert "ce" not in trainer.terms and {"kd", "global", "local"} <= set(trainer.terms)


def test_distillation_on_labelled_and_transfer_rows_logs_every_term(tmp_path, tokenizer, labelled, transfer):
    trainer = WCoRDTrainer(
        model=tiny_bert(32, 2, seed=1),
        teacher_model=tiny_bert(64, 4, seed=2),
        args=WCoRDConfig(**trainer_settings(tmp_path, max_steps=20, num_negatives=64)),
        train_dataset=labelled,
        transfer_dataset=transfer,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    assert trainer.training_rows == (LABELLED, len(transfer))
    trainer.train()
    # One memory-bank slot, and one warm write, per row, labelled or not.
    bank = trainer.distiller.teacher_stores[0]
    assert bank.num_slots == LABELLED + len(transfer)
    assert bool(bank.written.all())
    for entry in training_logs(trainer):
        for term in ("loss_kd", "loss_global", "loss_local"):
            assert math.isfinite(entry[term])
    # At random, most batches of 16 from 64 labelled and 448 unlabeled rows hold a labelled row or two.
    assert any("loss_ce" in entry and math.isfinite(entry["loss_ce"]) for entry in training_logs(trainer))


@pytest.mark.parametrize("policy", ["teacher", "none"])
def test_label_aware_negatives_record_the_teachers_class_for_unlabeled_rows(
    tmp_path, tokenizer, partly_labelled, policy
):
    trainer = make_trainer(
        tmp_path,
        tokenizer,
        partly_labelled,
        max_steps=1,
        label_aware_negatives=True,
        unlabeled_negative_labels=policy,
    )
    trainer.train()
    recorded = trainer.distiller.teacher_stores[0].labels
    assert recorded[:LABELLED].tolist() == partly_labelled["label"][:LABELLED]
    if policy == "none":
        assert set(recorded[LABELLED:].tolist()) == {UNLABELED}
        return
    teacher = trainer.teacher_model.eval()
    rows = list(range(LABELLED, LABELLED + 32))
    batch = collated(tokenizer, partly_labelled, rows)
    with torch.no_grad():
        predicted = teacher(**{k: v for k, v in batch.items() if k not in ("labels", "idx")}).logits.argmax(-1)
    assert recorded[rows].tolist() == predicted.tolist()


def test_an_anchor_without_a_class_leaves_out_no_negative_by_class():
    valid = torch.ones(4, dtype=torch.bool)
    entry_labels = torch.tensor([0, 1, -1, 0])
    excluded = negatives_mask(valid, torch.arange(4), entry_labels, torch.tensor([9, 8]), torch.tensor([0, -1]))
    assert excluded.tolist() == [[True, False, False, True], [False, False, False, False]]


def test_labelled_share_gives_every_batch_its_labelled_rows_and_covers_the_unlabeled_ones():
    labelled = np.zeros(1000, dtype=bool)
    labelled[::20] = True  # 50 labelled rows, 950 unlabeled
    sampler = LabelledShareSampler(labelled, batch_size=16, labelled_per_batch=4, seed=3)
    order = list(sampler)
    assert len(order) == len(sampler) == 16 * math.ceil(950 / 12)
    for start in range(0, len(order), 16):
        assert labelled[order[start : start + 16]].sum() == 4
    assert set(np.flatnonzero(~labelled)) <= set(order)
    assert list(sampler) == order  # the same epoch, the same order (a resumed run sees the same batches)
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_the_trainer_batches_hold_the_labelled_share(tmp_path, tokenizer, partly_labelled):
    trainer = make_trainer(tmp_path, tokenizer, partly_labelled, labelled_batch_share=0.25)
    batches = list(trainer.get_train_dataloader())
    assert len(batches) == math.ceil((len(partly_labelled) - LABELLED) / 12)
    assert all(int((batch["labels"] >= 0).sum()) == 4 for batch in batches)


def test_the_model_card_counts_the_rows_and_names_the_transfer_data(tmp_path, tokenizer, partly_labelled):
    trainer = make_trainer(tmp_path, tokenizer, partly_labelled, max_steps=1)
    trainer.model_card_info = ModelCardInfo(dataset="nyu-mll/glue", dataset_config="sst2", transfer_dataset="imdb")
    trainer.train()
    trainer.save_model()
    card = (tmp_path / "run" / "README.md").read_text()
    assert f"{LABELLED:,} labelled and {len(partly_labelled) - LABELLED:,} unlabeled" in card
    assert "- nyu-mll/glue" in card and "- imdb" in card


def test_a_task_loss_with_no_labelled_row_is_refused(tmp_path, tokenizer, transfer):
    unlabeled = transfer.add_column("idx", list(range(len(transfer))))
    with pytest.raises(ValueError, match="None of the 448 training rows has a label.*alpha_ce=0"):
        make_trainer(tmp_path, tokenizer, unlabeled)
    trainer = make_trainer(tmp_path, tokenizer, unlabeled, alpha_ce=0.0, max_steps=2)
    assert trainer.training_rows == (0, len(transfer))
    trainer.train()


def test_transfer_rows_that_do_not_match_the_training_rows_are_refused(labelled, transfer, sst2_train):
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['attention_mask'\].*preprocess the transfer rows"):
        add_transfer_rows(labelled, transfer.remove_columns("attention_mask"))
    with_labels = sst2_train.select(range(LABELLED, 100)).remove_columns(["sentence", "idx"])
    with pytest.raises(ValueError, match="'label' column with labels.*remove_columns"):
        add_transfer_rows(labelled, with_labels)
    # GLUE's test splits carry a label column of -1 only: accepted.
    hidden = with_labels.map(lambda row: {"label": -1})
    assert len(add_transfer_rows(labelled, hidden)) == LABELLED + len(hidden)


def test_missing_and_float_class_labels_are_clear_errors(tmp_path, tokenizer, labelled):
    missing = labelled.cast_column("label", labelled.features["label"]).map(
        lambda row, i: {"label": None if i % 2 else row["label"]}, with_indices=True
    )
    with pytest.raises(ValueError, match=r"missing values \(None\).*-1.*NaN"):
        make_trainer(tmp_path, tokenizer, missing.add_column("idx", list(range(len(missing)))))
    floats = labelled.cast_column("label", datasets.Value("float32")).add_column("idx", list(range(LABELLED)))
    with pytest.raises(ValueError, match="labels are floats but the student is a classifier"):
        make_trainer(tmp_path, tokenizer, floats)
    with pytest.raises(ValueError, match="labelled_batch_share"):
        WCoRDConfig(output_dir=str(tmp_path), labelled_batch_share=1.0)
