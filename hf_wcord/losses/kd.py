"""Logit distillation: Hinton's temperature-scaled KL divergence, and MSE for regression heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""Hinton's knowledge-distillation loss, computed in fp32.

        L_kd = T^2 * (1/n) * sum_i KL(softmax(z_T[i] / T) || softmax(z_S[i] / T))

    Args:
        student_logits: `(n, num_classes)` student logits z_S (gradients flow through them).
        teacher_logits: `(n, num_classes)` teacher logits z_T (treated as constants).
        temperature: the softmax temperature T > 0.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"Student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ "
            "in shape: teacher and student must predict the same label set."
        )
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def regression_kd_loss(student_predictions: torch.Tensor, teacher_predictions: torch.Tensor) -> torch.Tensor:
    r"""Distillation loss for regression heads, computed in fp32.

    L_kd = (1/n) * sum_i ||y_S[i] - y_T[i]||^2
    """
    if student_predictions.shape != teacher_predictions.shape:
        raise ValueError(
            f"Student predictions {tuple(student_predictions.shape)} and teacher predictions "
            f"{tuple(teacher_predictions.shape)} differ in shape."
        )
    return F.mse_loss(student_predictions.float(), teacher_predictions.detach().float())


class LogitDistillationLoss(nn.Module):
    r"""KD on logits: `T^2 * KL(softmax(z_T/T) || softmax(z_S/T))` for classification, MSE for regression."""

    def __init__(self, temperature: float, regression: bool = False) -> None:
        super().__init__()
        self.temperature = temperature
        self.regression = regression

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        if self.regression:
            return regression_kd_loss(student_logits, teacher_logits)
        return kd_loss(student_logits, teacher_logits, self.temperature)
