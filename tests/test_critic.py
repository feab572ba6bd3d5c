"""The critic a user's student learns from: warmed up before it teaches, negatives projected by today's heads, and
what it knows in the training logs."""

import math

import torch
from test_trainer_text import make_trainer, training_logs

from hf_wcord import WCoRDConfig
from hf_wcord.critic_warmup import critic_loss, warm_up_critic
from hf_wcord.distiller import WCoRDDistiller

DIAGNOSTICS = (
    "wcord/teacher_anchored_accuracy",
    "wcord/teacher_anchored_positive_probability",
    "wcord/student_anchored_accuracy",
    "wcord/student_anchored_positive_probability",
    "wcord/critic_lipschitz_ratio",
    "wcord/bank_staleness_cosine",
    "wcord/plan_entropy",
    "wcord/marginal_error",
)


def _filled_distiller(tmp_path, rows=400, **overrides):
    """A distiller whose feature bank holds correlated teacher (24-d) and student (16-d) features of `rows` examples
    sharing an 8-d latent, as after the warm fill."""
    torch.manual_seed(0)
    config = WCoRDConfig(output_dir=str(tmp_path), report_to="none", num_negatives=256, **overrides)
    distiller = WCoRDDistiller([24], [16], config, num_slots=rows)
    latent = torch.randn(rows, 8)
    teacher = latent @ torch.randn(8, 24) + 0.3 * torch.randn(rows, 24) + 4.0
    student = latent @ torch.randn(8, 16) + 0.3 * torch.randn(rows, 16) - 2.0
    distiller.train()
    distiller.fill([teacher], [student], torch.arange(rows))
    distiller.fit_standardizers()
    return distiller


def test_the_warmed_up_critic_tells_positives_from_negatives(tmp_path):
    distiller = _filled_distiller(tmp_path)
    index = torch.arange(64)
    with torch.no_grad():
        _, before = critic_loss(distiller, index)
    report = warm_up_critic(distiller, steps=150, batch_size=32, learning_rate=1e-2, seed=0)
    with torch.no_grad():
        _, after = critic_loss(distiller, index)
    # Chance is 1 / 257 for the positive's probability; the untrained heads sit near it.
    assert before["teacher_anchored_positive_probability"] < 0.1
    assert after["teacher_anchored_accuracy"] > 0.6 and after["student_anchored_accuracy"] > 0.6
    assert after["teacher_anchored_positive_probability"] > 5 * before["teacher_anchored_positive_probability"]
    assert report["teacher_anchored_accuracy"] > 0.5
    # Only the heads learn; the bank of features is untouched by the warm-up.
    assert distiller.teacher_stores[0].written.all()


def test_feature_bank_negatives_are_todays_heads_applied_to_the_stored_features(tmp_path):
    distiller = _filled_distiller(tmp_path)
    slots = torch.tensor([3, 7, 11])
    stored = distiller.student_stores[0].negatives(slots)
    head = distiller.student_heads[0]
    before = distiller.stored_embeddings(0, "student", stored)
    with torch.no_grad():
        head.net[0].parametrizations.weight.original.add_(torch.randn_like(head.net[0].weight))
    after = distiller.stored_embeddings(0, "student", stored)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, head.embed(head.standardize.transform(stored)))
    # The stored vectors are the raw features, as written (no momentum, no projection).
    assert stored.shape == (3, 16) and stored.norm(dim=1).min().item() > 1.5


def test_diagnostics_are_in_the_training_logs_and_finite(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(tmp_path, tokenizer, sst2_train, max_steps=10, critic_warmup_steps=20)
    trainer.train()
    logs = training_logs(trainer)
    for entry in logs:
        for name in DIAGNOSTICS:
            assert math.isfinite(entry[name]), (name, entry)
        assert 0.0 <= entry["wcord/teacher_anchored_accuracy"] <= 1.0
        # The spectral critic holds its stated constant on every training batch.
        assert entry["wcord/critic_lipschitz_ratio"] <= 1.0 + 1e-4
    # What the critic knew when the student's first step came, once, in the first log.
    assert math.isfinite(logs[0]["wcord/critic_warmup_teacher_anchored_accuracy"])
    assert "wcord/critic_warmup_seconds" in logs[0]
    assert all("wcord/critic_warmup_seconds" not in entry for entry in logs[1:])


def test_the_crd_baseline_trains_with_bank_positives(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(
        tmp_path,
        tokenizer,
        sst2_train,
        max_steps=10,
        global_objective="nce",
        lipschitz="none",
        standardize_features=False,
        bank_content="embeddings",
        warm_negatives=False,
        lambda_local=0.0,
    )
    trainer.train()
    logs = training_logs(trainer)
    assert all(math.isfinite(entry["loss_global"]) for entry in logs)
    assert all("wcord/critic_lipschitz_ratio" not in entry for entry in logs)
    assert (trainer.distiller.crd_loss.normalizers > 0).all()
