"""CRD's NCE loss (Tian et al., ICLR 2020), as RepDistiller computes it: the baseline that WCoRD's global term is
compared with."""

from __future__ import annotations

import math

import torch
from torch import nn

NCE_EPS = 1e-7


def nce_loss(scores: torch.Tensor, num_data: int) -> torch.Tensor:
    r"""RepDistiller's `ContrastLoss` on the normalised scores x of n anchors, column 0 the positive and the K others
    negatives (`(n, K + 1)`; excluded negatives as NaN):

        P_n = 1 / N,   D(x) = x / (x + K P_n)
        L = -(1/n) sum_i [ log D(x_i0) + sum_{j >= 1} log(1 - D(x_ij)) ]
          = -(1/n) sum_i [ log(x_i0 / (x_i0 + K P_n + eps)) + sum_j log(K P_n / (x_ij + K P_n + eps)) ]

    the binary NCE objective that tells data (the positive pair) from noise (K uniform draws of N)."""
    scores = scores.float()
    negatives = scores.shape[1] - 1
    noise = negatives / num_data
    positive = torch.log(scores[:, 0] / (scores[:, 0] + noise + NCE_EPS))
    negative = torch.log(noise / (scores[:, 1:] + noise + NCE_EPS))
    negative = torch.nan_to_num(negative, nan=0.0)
    return -(positive.sum() + negative.sum()) / scores.shape[0]


def chance_nce_loss(num_negatives: int) -> float:
    r"""The lowest value of [`nce_loss`] for a critic that scores every pair alike, whatever N: with every x equal,
    the loss is lowest at x = P_n = 1 / N, where

        L_chance = ln(K + 1) + K ln(1 + 1/K)   (about ln K + 1; the eps of `nce_loss` left out)

    A run whose NCE stays there has learned nothing to tell a positive from its negatives ([`CRDNCELoss`] sums two
    directions: twice this)."""
    if num_negatives < 1:
        raise ValueError(f"The NCE needs at least one negative per anchor, got num_negatives={num_negatives}.")
    return math.log(num_negatives + 1) + num_negatives * math.log1p(1 / num_negatives)


class CRDNCELoss(nn.Module):
    r"""CRD's contrastive loss with memory-bank positives, both directions summed.

    For teacher anchors t_i against the student bank M_S (and student anchors against the teacher bank M_T):

        x_i0 = exp(<t_i, M_S[i]> / tau) / Z_T,   x_ij = exp(<t_i, M_S[k_j]> / tau) / Z_T   (k_j: K drawn slots)
        L = nce_loss(x^T) + nce_loss(x^S)

    The positive is the bank's stored embedding of the anchor's own example, not its fresh embedding. Z is fixed at
    the first call to mean(exp(scores / tau)) * N, as RepDistiller's `ContrastMemory` does, and kept in the state.
    Computed in fp32.
    """

    def __init__(self, num_data: int, temperature: float = 0.07) -> None:
        super().__init__()
        self.num_data = num_data
        self.temperature = temperature
        self.register_buffer("normalizers", torch.full((2,), -1.0))

    def direction(
        self, side: int, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised scores `(n, K + 1)` of anchors `(n, d)` against their bank positives `(n, d)` (column 0) and the
        shared bank negatives `(K, d)`, and the raw critic values `<., .> / tau` behind them."""
        anchors = anchors.float()
        positive = (anchors * positives.float()).sum(dim=1, keepdim=True)
        logits = torch.cat([positive, anchors @ negatives.float().T], dim=1) / self.temperature
        exponentials = torch.exp(logits)
        if self.normalizers[side] < 0:
            with torch.no_grad():
                self.normalizers[side] = exponentials.mean() * self.num_data
        return exponentials / self.normalizers[side].item(), logits

    def forward(
        self,
        teacher_embeddings: torch.Tensor,
        student_embeddings: torch.Tensor,
        student_bank: tuple[torch.Tensor, torch.Tensor],
        teacher_bank: tuple[torch.Tensor, torch.Tensor],
        excluded: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The summed loss, and each direction's critic values `(n, K + 1)` (teacher-anchored, student-anchored).

        Each bank is `(positives (n, d), negatives (K, d))`: the stored embeddings of the anchors' own examples and of
        the drawn slots. `excluded` (`(n, K)`) flags negatives to leave out (slots of the anchor's class)."""
        losses, logits = [], []
        for side, (anchors, (positives, negatives)) in enumerate(
            ((teacher_embeddings, student_bank), (student_embeddings, teacher_bank))
        ):
            scores, values = self.direction(side, anchors, positives, negatives)
            if excluded is not None:
                scores = torch.cat([scores[:, :1], scores[:, 1:].masked_fill(excluded, float("nan"))], dim=1)
                values = torch.cat([values[:, :1], values[:, 1:].masked_fill(excluded, float("-inf"))], dim=1)
            losses.append(nce_loss(scores, self.num_data))
            logits.append(values)
        return losses[0] + losses[1], logits
