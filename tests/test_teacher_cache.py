"""The teacher-output cache: exact against the live teacher, reused only while fresh, refused where it would lie."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from test_trainer_text import TERMS, make_trainer, training_logs

from hf_wcord.teacher_cache import CACHE_META_NAME


def batch_of(trainer, dataset, rows=16):
    collator = trainer._get_collator_with_removed_columns(trainer.data_collator, "training")
    return trainer._prepare_inputs(collator([dataset[i] for i in range(rows)]))


def test_cached_losses_equal_live_teacher_losses(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, teacher_cache=str(tmp_path / "cache"))
    assert len(trainer.teacher_cache) == len(sst2_train)
    trainer.distiller.eval()  # no store updates, so both evaluations see the same bank
    inputs = batch_of(trainer, sst2_train.shuffle(seed=1))
    index = inputs.pop("idx")
    student_outputs = trainer.model(**inputs, output_hidden_states=True)
    teacher_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    with torch.no_grad():
        live_outputs = trainer.teacher_model(**teacher_inputs, output_hidden_states=True)
    torch.manual_seed(0)  # the same negatives drawn from the bank for both
    live = trainer.compute_loss_terms(inputs, student_outputs, live_outputs, index)
    torch.manual_seed(0)
    cached = trainer.compute_loss_terms(inputs, student_outputs, trainer.teacher_cache.lookup(index, "cpu"), index)
    assert set(live) == set(cached) == {"ce", "kd", "global", "local"}
    for name in live:
        assert cached[name].item() == pytest.approx(live[name].item(), abs=1e-5), name


def test_training_from_the_cache_never_runs_the_teacher(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, teacher_cache=str(tmp_path / "cache"), max_steps=10)
    calls = []
    trainer.teacher_model.register_forward_hook(lambda *args: calls.append(1))
    trainer.train()
    assert not calls
    assert all(math.isfinite(entry[term]) for entry in training_logs(trainer) for term in TERMS)


def test_a_fresh_cache_is_reused_and_a_stale_one_rebuilt_naming_the_change(tmp_path, tokenizer, sst2_train, caplog):
    cache = tmp_path / "cache"
    make_trainer(tmp_path, tokenizer, sst2_train, teacher_cache=str(cache))
    built = (cache / "logits.npy").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="hf_wcord"):
        make_trainer(tmp_path, tokenizer, sst2_train, teacher_cache=str(cache))
    assert "Using the teacher cache" in caplog.text and (cache / "logits.npy").stat().st_mtime_ns == built

    shorter = sst2_train.map(lambda row: tokenizer(row["sentence"], truncation=True, max_length=16), batched=True)
    settings = {}
    for change, setting, expected in (
        ("data", {}, None),
        ("teacher_layers", {"layer_map": "2:1"}, [2]),
        ("pooling", {"pooling": "first"}, "first"),
    ):
        settings.update(setting)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hf_wcord"):
            trainer = make_trainer(tmp_path, tokenizer, shorter, teacher_cache=str(cache), **settings)
        assert f"stale ({change} changed)" in caplog.text
        if expected is not None:
            assert trainer.teacher_cache.meta[change] == expected


def test_other_teacher_weights_make_the_cache_stale(tmp_path, tokenizer, sst2_train, caplog):
    cache = tmp_path / "cache"
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, teacher_cache=str(cache))
    with torch.no_grad():
        next(trainer.teacher_model.parameters()).add_(1e-3)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_wcord"):
        trainer._open_teacher_cache(str(cache))
    assert "stale (teacher changed)" in caplog.text


def test_on_the_fly_augmentation_is_refused(tmp_path, tokenizer, sst2_train):
    augmented = sst2_train.with_transform(lambda batch: batch)
    with pytest.raises(ValueError, match="on-the-fly transform.*dataset.map"):
        make_trainer(tmp_path, tokenizer, augmented, teacher_cache=str(tmp_path / "cache"))


def test_a_folder_holding_other_files_is_not_overwritten(tmp_path, tokenizer, sst2_train):
    folder = tmp_path / "not_a_cache"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds other files"):
        make_trainer(tmp_path, tokenizer, sst2_train, teacher_cache=str(folder))
    assert (folder / "notes.txt").read_text() == "keep me" and not (folder / CACHE_META_NAME).exists()


def test_the_cache_needs_an_index_numbering_the_examples(tmp_path, tokenizer, sst2_train):
    with pytest.raises(ValueError, match="number the training examples 0..N-1"):
        make_trainer(
            tmp_path,
            tokenizer,
            sst2_train.select(range(100, 300)),
            teacher_cache=str(tmp_path / "c"),
            lambda_global=0.0,
            lambda_local=0.0,
        )


def test_the_cache_build_shows_progress_unless_disable_tqdm(tmp_path, tokenizer, sst2_train, capfd):
    make_trainer(tmp_path, tokenizer, sst2_train, teacher_cache=str(tmp_path / "shown"), disable_tqdm=False)
    shown = capfd.readouterr().err
    assert "Building the teacher cache" in shown and "Fingerprinting the training set" in shown
    make_trainer(tmp_path, tokenizer, sst2_train, teacher_cache=str(tmp_path / "quiet"), disable_tqdm=True)
    assert "teacher cache" not in capfd.readouterr().err
