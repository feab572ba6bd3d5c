"""The critic gate: the student feels the global term in proportion to what the critic knows.

A critic that cannot yet tell an example's own pair from the negatives sends the student a gradient that is plain
alignment onto the heads' projections; one that ranks the positive first most of the time sends the contrastive
signal the method is about. The gate measures that on every training batch and scales the student's share of the
gradient by it, while the heads keep learning from the whole term.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ACCURACY_KEYS = ("teacher_anchored_accuracy", "student_anchored_accuracy")


def mean_accuracy(diagnostics: dict[str, float] | dict[str, torch.Tensor]) -> torch.Tensor | None:
    """a_t: the mean of the directions' contrastive accuracies that `diagnostics` holds (None where it holds none)."""
    accuracies = [
        torch.as_tensor(diagnostics[key], dtype=torch.float32) for key in ACCURACY_KEYS if key in diagnostics
    ]
    return torch.stack(accuracies).mean() if accuracies else None


def scale_gradient(tensor: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """`tensor` in the forward pass; `factor * grad` in the backward pass (`factor` is not differentiated)."""
    factor = factor.detach().to(tensor.dtype).clone()  # the gate is updated in place before the backward pass
    return tensor.detach() + factor * (tensor - tensor.detach())


class CriticGate(nn.Module):
    r"""A running mean of the critic's contrastive accuracy, the factor on the global term's gradient into the student:

        a_t = mean_d acc_d(batch t)    (acc_d: share of anchors of direction d whose positive outscores every negative)
        g_t = m * g_{t-1} + (1 - m) * a_t,    g_0 = the accuracy after the critic warm-up (0 without one)

    The student's features enter the global term as `scale_gradient(x, g)` (value x, gradient g * dL/dx): the
    encoder's gradient from the term is g times the ungated one, the heads' is unchanged. g lies in [0, 1]; with
    several processes a_t is the mean over their batches, so every rank holds the same g. It is a buffer: checkpoints
    carry it and a resumed run continues with it.

    Args:
        momentum: m, the weight of the previous value (0.95: a horizon of about 20 steps).
    """

    def __init__(self, momentum: float = 0.95) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"The critic gate's momentum must be in [0, 1), got {momentum}.")
        self.momentum = momentum
        self.register_buffer("value", torch.zeros(()))

    def scale(self, features: torch.Tensor) -> torch.Tensor:
        """The features as the global term takes them: the same values, g times the gradient."""
        return scale_gradient(features, self.value)

    @torch.no_grad()
    def start(self, diagnostics: dict[str, float]) -> None:
        """Set g_0 to the critic's accuracy after its warm-up (`diagnostics` as `warm_up_critic` returns them)."""
        accuracy = mean_accuracy(diagnostics)
        if accuracy is not None:
            self.value.fill_(accuracy)

    @torch.no_grad()
    def update(
        self,
        diagnostics: dict[str, torch.Tensor],
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        """g_t from one batch's diagnostics (a no-op where they hold no accuracy); `gather` all-gathers over
        processes."""
        accuracy = mean_accuracy(diagnostics)
        if accuracy is None:
            return
        accuracy = accuracy.to(self.value.device)
        if gather is not None:
            accuracy = gather(accuracy[None]).mean()
        self.value.mul_(self.momentum).add_((1.0 - self.momentum) * accuracy)
