"""The critic a user's student learns from: warmed up before it teaches, negatives projected by today's heads, and
what it knows in the training logs."""

import math

import pytest
import torch
from test_trainer_text import make_trainer, training_logs
from torch import nn

from hf_wcord import WCoRDConfig
from hf_wcord.critic_warmup import critic_loss, warm_up_critic
from hf_wcord.distiller import WCoRDDistiller, in_batch_excluded

TAU = 0.07
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
    before = distiller.stored_embeddings(0, "student", slots)
    with torch.no_grad():
        head.net[0].parametrizations.weight.original.add_(torch.randn_like(head.net[0].weight))
    after = distiller.stored_embeddings(0, "student", slots)
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


def _global_term(distiller, t, s, index, labels=None):
    torch.manual_seed(3)
    slots, excluded = distiller.teacher_stores[0].draw(distiller.num_negatives, index)
    term, diagnostics = distiller.global_term(0, t, s, slots, excluded, index, labels)
    teacher_negatives = distiller.stored_embeddings(0, "teacher", slots).detach()
    positive = (s * t).sum(dim=1) / TAU
    negative = (s @ teacher_negatives.T / TAU).masked_fill(excluded, float("-inf"))
    student_anchored = (torch.logsumexp(torch.cat([positive[:, None], negative], dim=1), dim=1) - positive).mean()
    return term, diagnostics, student_anchored


def _batch_embeddings(seed=5, rows=12):
    generator = torch.Generator().manual_seed(seed)
    t = nn.functional.normalize(torch.randn(rows, 8, generator=generator), dim=1)
    s = (0.5 * t + 0.5 * nn.functional.normalize(torch.randn(rows, 8, generator=generator), dim=1)).requires_grad_()
    return t, s


def test_batch_student_negatives_are_the_batchs_fresh_students(tmp_path):
    """student_negatives='batch': the teacher-anchored direction ranks each anchor's student among the batch's other
    students (in-batch InfoNCE, the gradient reaching every student of the batch); the student-anchored direction
    keeps the bank's teacher negatives."""
    distiller = _filled_distiller(tmp_path, feat_dim=8, student_negatives="batch")
    t, s = _batch_embeddings()
    index = torch.arange(12)
    term, diagnostics, student_anchored = _global_term(distiller, t, s, index)
    teacher_anchored = nn.functional.cross_entropy(t @ s.T / TAU, index)
    reference = (teacher_anchored + student_anchored) / 2
    assert torch.allclose(term, reference, atol=1e-6)
    (gradient,) = torch.autograd.grad(term, s)
    (expected,) = torch.autograd.grad(reference, s)
    assert torch.allclose(gradient, expected, atol=1e-6)
    assert 0.0 <= diagnostics["teacher_anchored_accuracy"].item() <= 1.0


def test_without_student_negatives_the_global_term_is_the_student_anchored_direction(tmp_path):
    distiller = _filled_distiller(tmp_path, feat_dim=8, student_negatives="none")
    t, s = _batch_embeddings()
    term, diagnostics, student_anchored = _global_term(distiller, t, s, torch.arange(12))
    assert torch.allclose(term, student_anchored, atol=1e-6)
    assert "teacher_anchored_accuracy" not in diagnostics and "student_anchored_accuracy" in diagnostics


def test_in_batch_negatives_leave_out_the_anchor_its_duplicates_and_with_labels_its_class():
    index = torch.tensor([4, 9, 4, 2])
    assert in_batch_excluded(index, None, 4, torch.device("cpu")).tolist() == [
        [True, False, True, False],
        [False, True, False, False],
        [True, False, True, False],
        [False, False, False, True],
    ]
    labels = torch.tensor([1, 0, 1, -1])
    excluded = in_batch_excluded(torch.arange(4), labels, 4, torch.device("cpu"))
    assert excluded.tolist() == [
        [True, False, True, False],
        [False, True, False, False],
        [True, False, True, False],
        [False, False, False, True],
    ]


@pytest.mark.parametrize("student_negatives", ["batch", "none"])
def test_fresh_student_negatives_train_with_finite_diagnostics(tmp_path, tokenizer, sst2_train, student_negatives):
    trainer = make_trainer(
        tmp_path, tokenizer, sst2_train, max_steps=6, critic_warmup_steps=5, student_negatives=student_negatives
    )
    trainer.train()
    logs = training_logs(trainer)
    names = [name for name in DIAGNOSTICS if student_negatives == "batch" or "teacher_anchored" not in name]
    for entry in logs:
        for name in names:
            assert math.isfinite(entry[name]), (name, entry)
    assert all(("wcord/teacher_anchored_accuracy" in entry) == (student_negatives == "batch") for entry in logs)


def test_crd_with_other_student_negatives_is_refused(tmp_path):
    with pytest.raises(ValueError, match="student_negatives='bank'"):
        WCoRDConfig(
            output_dir=str(tmp_path),
            global_objective="nce",
            bank_content="embeddings",
            student_negatives="batch",
        )
