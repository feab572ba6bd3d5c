"""The critic gate: the student feels the global term in proportion to what the critic knows, the heads the whole
of it; the gate starts from the warmed-up critic, follows its accuracy, and is logged and checkpointed."""

import pytest
import torch
from safetensors import safe_open
from test_critic import _filled_distiller
from test_trainer_text import make_trainer, training_logs

from hf_wcord import WCoRDConfig
from hf_wcord.checkpoints import DISTILLER_STATE_NAME
from hf_wcord.critic_gate import CriticGate, scale_gradient


def test_scale_gradient_keeps_the_value_and_scales_the_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    y = scale_gradient(x, torch.tensor(0.25))
    assert torch.equal(y, x)
    (y * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, 0.25 * torch.arange(3.0).expand(4, 3))


def test_the_gate_starts_from_the_warm_up_and_follows_the_accuracy():
    gate = CriticGate(momentum=0.5)
    gate.start({"teacher_anchored_accuracy": 0.8, "student_anchored_accuracy": 0.4, "seconds": 3.0})
    assert gate.value.item() == pytest.approx(0.6)
    gate.update({"teacher_anchored_accuracy": torch.tensor(0.0), "student_anchored_accuracy": torch.tensor(0.2)})
    assert gate.value.item() == pytest.approx(0.5 * 0.6 + 0.5 * 0.1)
    gate.update({"plan_entropy": torch.tensor(3.0)})  # no accuracy in the batch: unchanged
    assert gate.value.item() == pytest.approx(0.35)
    with pytest.raises(ValueError, match="momentum"):
        CriticGate(momentum=1.0)


def _student_and_head_gradients(distiller, teacher, student, index):
    student = student.clone().requires_grad_(True)
    terms = distiller([teacher], [student], index)
    distiller.zero_grad(set_to_none=True)
    terms["global"].backward()
    head = distiller.student_heads[0].net[0].parametrizations.weight.original.grad.clone()
    return student.grad.clone(), head, terms["global"].detach()


def test_the_student_feels_g_times_the_global_gradient_and_the_heads_all_of_it(tmp_path):
    rows, index = 400, torch.arange(32)
    teacher, student = torch.randn(32, 24) + 4.0, torch.randn(32, 16) - 2.0
    results = {}
    for gated in (False, True):
        distiller = _filled_distiller(tmp_path, rows, critic_gate=gated, lambda_local=0.0)
        if gated:
            distiller.critic_gate.value.fill_(0.3)
        torch.manual_seed(1)  # the same negatives drawn in both runs
        results[gated] = _student_and_head_gradients(distiller, teacher, student, index)
    (student_plain, head_plain, loss_plain), (student_gated, head_gated, loss_gated) = results[False], results[True]
    assert torch.allclose(loss_gated, loss_plain)
    assert torch.allclose(student_gated, 0.3 * student_plain, atol=1e-7)
    assert torch.allclose(head_gated, head_plain, atol=1e-7)
    assert student_plain.abs().max() > 0


def test_the_local_term_is_not_gated(tmp_path):
    index = torch.arange(32)
    teacher, student = torch.randn(32, 24) + 4.0, torch.randn(32, 16) - 2.0
    gradients = []
    for gated in (False, True):
        distiller = _filled_distiller(tmp_path, 400, critic_gate=gated)
        if gated:
            distiller.critic_gate.value.zero_()
        torch.manual_seed(1)
        features = student.clone().requires_grad_(True)
        distiller([teacher], [features], index)["local"].backward()
        gradients.append(features.grad)
    assert torch.allclose(gradients[0], gradients[1], atol=1e-7)


def test_the_gate_is_logged_starts_from_the_warm_up_and_is_checkpointed(tmp_path, tokenizer, sst2_train):
    trainer = make_trainer(
        tmp_path,
        tokenizer,
        sst2_train,
        max_steps=6,
        logging_steps=2,
        critic_warmup_steps=20,
        critic_gate=True,
        save_strategy="steps",
        save_steps=3,
    )
    trainer.train()
    logs = training_logs(trainer)
    warm = logs[0]
    start = (
        warm["wcord/critic_warmup_teacher_anchored_accuracy"] + warm["wcord/critic_warmup_student_anchored_accuracy"]
    ) / 2
    gates = [entry["wcord/critic_gate"] for entry in logs]
    assert all(0.0 <= gate <= 1.0 for gate in gates)
    assert gates[0] == pytest.approx(start, abs=0.03)  # the mean of g_0 and g_1 = 0.95 g_0 + 0.05 a_1
    with safe_open(str(tmp_path / "run" / "checkpoint-3" / DISTILLER_STATE_NAME), "pt") as saved:
        assert 0.0 <= saved.get_tensor("critic_gate.value").item() <= 1.0


def test_the_gate_momentum_is_checked(tmp_path):
    with pytest.raises(ValueError, match="critic_gate_momentum"):
        WCoRDConfig(output_dir=str(tmp_path), critic_gate=True, critic_gate_momentum=1.5)
