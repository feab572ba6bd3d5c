import math

import pytest
import torch

from hf_wcord.losses import LogitDistillationLoss, kd_loss, regression_kd_loss


def test_kd_loss_equals_the_formula():
    torch.manual_seed(0)
    student, teacher, temperature = torch.randn(5, 3), torch.randn(5, 3), 2.5
    p_teacher = torch.softmax(teacher / temperature, dim=1)
    p_student = torch.softmax(student / temperature, dim=1)
    per_example = [
        sum(p_teacher[i, c] * math.log(p_teacher[i, c] / p_student[i, c]) for c in range(3)) for i in range(5)
    ]
    expected = temperature**2 * sum(per_example) / 5
    assert kd_loss(student, teacher, temperature).item() == pytest.approx(float(expected), rel=1e-5)


def test_kd_loss_is_zero_for_equal_logits_and_ignores_teacher_gradients():
    logits = torch.randn(4, 6)
    assert kd_loss(logits, logits.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(4, 6, requires_grad=True)
    teacher = torch.randn(4, 6, requires_grad=True)
    kd_loss(student, teacher, 1.0).backward()
    assert student.grad is not None and teacher.grad is None


def test_kd_loss_is_fp32_and_finite_for_half_inputs():
    student = (torch.randn(8, 4) * 30).half()
    teacher = (torch.randn(8, 4) * 30).bfloat16()
    value = kd_loss(student, teacher, 1.0)
    assert value.dtype == torch.float32 and torch.isfinite(value)


def test_kd_loss_rejects_mismatched_label_sets():
    with pytest.raises(ValueError, match="same label set"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 4), 1.0)


def test_regression_kd_is_mse_and_module_dispatches():
    student, teacher = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [4.0]])
    assert regression_kd_loss(student, teacher).item() == pytest.approx((1 + 4) / 2)
    assert LogitDistillationLoss(2.0, regression=True)(student, teacher).item() == pytest.approx(2.5)
    logits = torch.randn(3, 2)
    assert LogitDistillationLoss(2.0)(logits, logits).item() == pytest.approx(0.0, abs=1e-6)
