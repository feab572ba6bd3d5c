"""The negative stores a user gets from the trainer (warm, sized and masked correctly), the balance between the task
loss and the representation terms, and the heads' optimisation (clipping, their own parameter group)."""

import math

import pytest
import torch
from test_trainer_text import make_trainer, training_logs
from transformers import DataCollatorWithPadding, TrainerCallback

from hf_wcord.negatives import representation_ramp


class RecordAtFirstStep(TrainerCallback):
    """Record, at the start of the first optimizer step, which memory-bank slots hold an embedding."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.written = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.written is None:
            self.written = [store.written.clone() for store in self.trainer.distiller.teacher_stores]
            self.written += [store.written.clone() for store in self.trainer.distiller.student_stores]


def test_the_warm_bank_holds_a_real_embedding_in_every_slot_at_step_one(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=1, layer_map="uniform")
    recorder = RecordAtFirstStep(trainer)
    trainer.add_callback(recorder)
    trainer.train()
    assert len(recorder.written) == 4 and all(written.all() for written in recorder.written)
    # The slots hold the examples' pooled features (teacher hidden size 64, student 32), before the heads.
    assert [store.memory.shape[1] for store in trainer.distiller.teacher_stores] == [64, 64]
    assert [store.memory.shape[1] for store in trainer.distiller.student_stores] == [32, 32]


def test_an_embedding_bank_holds_the_heads_embeddings(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=1, bank_content="embeddings")
    trainer.train()
    memory = trainer.distiller.teacher_stores[0].memory
    assert memory.shape[1] == 128 and memory.norm(dim=1).max().item() <= 1 + 1e-5


def test_the_cold_bank_ablation_starts_with_random_slots(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(
        tmp_path, tokenizer, sst2_train, max_steps=1, warm_negatives=False, bank_content="embeddings"
    )
    recorder = RecordAtFirstStep(trainer)
    trainer.add_callback(recorder)
    trainer.train()
    assert all(written.all() for written in recorder.written)
    assert torch.allclose(trainer.distiller.student_stores[0].memory[-1].norm(), torch.tensor(1.0))


def test_a_resumed_run_does_not_refill_the_bank(tmp_path, tokenizer, sst2_train, monkeypatch):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=2, save_strategy="steps", save_steps=2)
    trainer.train()
    resumed = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=4, save_strategy="no")
    calls = []
    monkeypatch.setattr(resumed, "warm_negative_stores", lambda: calls.append(1))
    resumed.train(resume_from_checkpoint=True)
    assert not calls


def test_an_index_column_that_does_not_number_the_examples_is_refused(tmp_path, tokenizer, sst2_train):
    subset = sst2_train.select(range(100, 300))
    with pytest.raises(ValueError, match=r"must hold 0\.\.199, each once.*renumber"):
        make_trainer(tmp_path, tokenizer, subset, num_negatives=64)


def test_the_queue_is_capped_below_the_training_set_size(tmp_path, tokenizer, sst2_train):
    small = sst2_train.select(range(40)).remove_columns("idx")
    trainer = make_trainer(tmp_path, tokenizer, small, num_negatives=None, max_steps=3)
    assert not trainer.distiller.uses_bank
    assert trainer.distiller.teacher_stores[0].queue.shape[0] == 39
    trainer.train()


def test_the_gradient_penalty_updates_the_standardisers_once_per_step(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=3, lipschitz="gradient_penalty")
    trainer.train()
    # Statistics set once from the filled bank's features, then one update per training step (the critic warm-up
    # and the gradient penalty standardise with them without updating them).
    for head in [*trainer.distiller.teacher_heads, *trainer.distiller.student_heads]:
        assert int(head.standardize.num_batches_tracked) == 1 + 3
    assert all(math.isfinite(entry["loss_gradient_penalty"]) for entry in training_logs(trainer))


class HeadGradientNorm(TrainerCallback):
    def __init__(self, trainer):
        self.trainer = trainer
        self.norms = []

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        grads = [p.grad for p in self.trainer.distiller.parameters() if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())


def test_the_heads_gradients_are_clipped_to_max_grad_norm(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=4, max_grad_norm=1e-3)
    recorder = HeadGradientNorm(trainer)
    trainer.add_callback(recorder)
    trainer.train()
    assert len(recorder.norms) == 4 and max(recorder.norms) <= 1e-3 * (1 + 1e-4)


def test_a_ready_made_optimizer_is_refused_with_the_way_to_pass_one(tmp_path, tokenizer, sst2_train):
    from conftest import tiny_bert

    from hf_wcord import WCoRDConfig, WCoRDTrainer

    student = tiny_bert(32, 2, seed=1)
    with pytest.raises(ValueError, match="optimizer_cls_and_kwargs"):
        WCoRDTrainer(
            model=student,
            teacher_model=tiny_bert(64, 4, seed=2),
            args=WCoRDConfig(output_dir=str(tmp_path), report_to="none"),
            train_dataset=sst2_train,
            optimizers=(torch.optim.SGD(student.parameters(), lr=0.1), None),
        )
    trainer = WCoRDTrainer(
        model=tiny_bert(32, 2, seed=1),
        teacher_model=tiny_bert(64, 4, seed=2),
        args=WCoRDConfig(output_dir=str(tmp_path), report_to="none", max_steps=1, save_strategy="no"),
        train_dataset=sst2_train,
        data_collator=DataCollatorWithPadding(tokenizer),
        optimizer_cls_and_kwargs=(torch.optim.SGD, {"lr": 0.1}),
    )
    trainer.train()
    assert isinstance(getattr(trainer.optimizer, "optimizer", trainer.optimizer), torch.optim.SGD)
    head_params = {id(p) for p in trainer.distiller.parameters()}
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert head_params <= in_optimizer


def test_the_representation_weights_ramp_up_over_the_warmup():
    assert representation_ramp(0, 100, 0.1) == 0.0
    assert representation_ramp(5, 100, 0.1) == 0.5
    assert representation_ramp(10, 100, 0.1) == 1.0 and representation_ramp(90, 100, 0.1) == 1.0
    assert representation_ramp(0, 100, 0.0) == 1.0


def test_the_trainer_applies_the_ramp_to_the_global_and_local_weights_only(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=1, representation_warmup_ratio=0.5)
    trainer.state.max_steps, trainer.state.global_step = 40, 5
    weights = trainer.loss_weights
    assert weights["global"] == pytest.approx(0.25 * trainer.args.lambda_global)
    assert weights["local"] == pytest.approx(0.25 * trainer.args.lambda_local)
    assert weights["ce"] == trainer.args.alpha_ce and weights["kd"] == trainer.args.alpha_kd


def test_label_aware_negatives_record_labels_and_exclude_the_anchor_class(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=2, label_aware_negatives=True)
    trainer.train()
    bank = trainer.distiller.teacher_stores[0]
    assert torch.equal(bank.labels, torch.tensor(sst2_train["label"]))
    slots, excluded = bank.draw(64, torch.tensor([0]), torch.tensor([1]))
    assert torch.equal(excluded[0], (bank.labels[slots] == 1) | (slots == 0))


def test_label_aware_negatives_are_refused_for_regression(tmp_path, sst2_train):
    from conftest import tiny_bert

    from hf_wcord import WCoRDConfig, WCoRDTrainer

    with pytest.raises(ValueError, match="regression.*label_aware_negatives=False"):
        WCoRDTrainer(
            model=tiny_bert(32, 2, num_labels=1, seed=1),
            teacher_model=tiny_bert(64, 4, num_labels=1, seed=2),
            args=WCoRDConfig(output_dir=str(tmp_path), report_to="none", label_aware_negatives=True),
            train_dataset=sst2_train,
        )


def test_text_features_default_to_the_mean_pooled_last_layer(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=1)
    assert trainer.layer_pairs == [(4, 2)] and trainer._pooling() == "mean"


@pytest.mark.parametrize("negatives_source", ["bank", "queue"])
def test_half_precision_stores_take_half_the_memory_and_train(tmp_path, tokenizer, sst2_train, negatives_source):
    # Without the critic warm-up, whose 200 steps of head training would amplify any rounding difference.
    settings = {"max_steps": 10, "negatives_source": negatives_source, "critic_warmup_steps": 0}
    full = make_trainer(tmp_path, tokenizer, sst2_train, **settings)
    half = make_trainer(tmp_path, tokenizer, sst2_train, bank_dtype="float16", **settings)
    stores = [*half.distiller.teacher_stores, *half.distiller.student_stores]
    assert all(buffer.dtype == torch.float16 for store in stores for buffer in store.buffers() if buffer.ndim == 2)
    # The slots (2-D buffers) in half precision; the per-dimension offset of a feature bank stays in fp32.
    float_bytes = sum(b.numel() * b.element_size() for s in stores for b in s.buffers() if b.ndim == 2)
    assert half.distiller.store_bytes < full.distiller.store_bytes
    assert float_bytes * 2 == sum(
        b.numel() * b.element_size()
        for s in (*full.distiller.teacher_stores, *full.distiller.student_stores)
        for b in s.buffers()
        if b.ndim == 2
    )
    # The same draws of negatives in both runs (they come from the global random state).
    torch.manual_seed(0)
    full.train()
    torch.manual_seed(0)
    half.train()
    for first, second in zip(training_logs(full), training_logs(half), strict=True):
        assert second["loss_global"] == pytest.approx(first["loss_global"], rel=0.02)


def test_large_stores_are_reported_with_the_ways_to_shrink_them(tmp_path, tokenizer, sst2_train, caplog, monkeypatch):
    import logging

    import hf_wcord.negatives

    caplog.set_level(logging.INFO, logger="hf_wcord")
    make_trainer(tmp_path, tokenizer, sst2_train, max_steps=1)
    # 512 slots x (64 + 32) feature dimensions x 4 bytes.
    assert "The WCoRD memory banks hold 0.2 MiB per process." in caplog.text
    monkeypatch.setattr(hf_wcord.negatives, "STORE_WARNING_BYTES", 1000)
    caplog.clear()
    make_trainer(tmp_path, tokenizer, sst2_train, max_steps=1)
    warnings = [record for record in caplog.records if record.levelname == "WARNING"]
    assert any("bank_dtype='float16'" in record.getMessage() for record in warnings)
