"""Global term: the dual form of the Wasserstein distance, trained as a contrastive bound against stored negatives."""

from __future__ import annotations

import torch
from torch import nn


class WassersteinContrastiveLoss(nn.Module):
    r"""Global WCoRD term on the heads' embeddings t (teacher) and s (student), each of norm at most 1.

    The critic is g(t, s) = <t, s> / tau; with the 1-Lipschitz heads of [`~hf_wcord.heads.ProjectionHead`] it is a
    Lipschitz critic (constant sqrt(2)/tau in the standardised features) of the Wasserstein dependency measure
    I_W(T; S) = sup_g E_{p(t,s)}[g(t, s)] - E_{p(t)p(s)}[g(t, s)].

    `objective="infonce"` (default) trains it as the contrastive bound with K negatives per anchor:

        L_T = -(1/n) sum_i [ g(t_i, s_i) - log( exp g(t_i, s_i) + sum_j exp g(t_i, s'_j) ) ]
        L_S = -(1/n) sum_i [ g(s_i, t_i) - log( exp g(s_i, t_i) + sum_j exp g(s_i, t'_j) ) ]
        L_global = (L_T + L_S) / 2

    where s'_j (t'_j) are stored student (teacher) embeddings of other examples. The two directions are averaged
    (CRD sums its two NCE terms, so its weight 0.8 corresponds to 1.6 here). `objective="dual"` is the plain
    Kantorovich-Rubinstein estimate, without the log-sum-exp:

        L_T = -[ (1/n) sum_i g(t_i, s_i) - (1/(nK)) sum_i sum_j g(t_i, s'_j) ],  L_global = (L_T + L_S) / 2

    Negatives flagged in a mask (an anchor's own stored slot, a slot never written, a slot of the anchor's class
    with label-aware negatives) are left out. Computed in fp32.
    """

    def __init__(self, temperature: float = 0.07, objective: str = "infonce") -> None:
        super().__init__()
        if objective not in ("infonce", "dual"):
            raise ValueError(f"Unknown global objective {objective!r}: use 'infonce' or 'dual'.")
        self.temperature = temperature
        self.objective = objective

    def scores(
        self,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor,
        excluded: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Critic values g of anchors `(n, d)` with their positives `(n,)` and with the shared negatives `(n, K)`, in
        fp32; `excluded` (`(n, K)` or `(1, K)`) negatives are set to -inf."""
        anchors, positives, negatives = anchors.float(), positives.float(), negatives.float()
        positive_scores = (anchors * positives).sum(dim=1) / self.temperature
        negative_scores = anchors @ negatives.T / self.temperature
        if excluded is not None:
            negative_scores = negative_scores.masked_fill(excluded, float("-inf"))
        return positive_scores, negative_scores

    def loss_from_scores(self, positive_scores: torch.Tensor, negative_scores: torch.Tensor) -> torch.Tensor:
        """One direction's loss from [`scores`] (excluded negatives at -inf)."""
        if self.objective == "dual":
            kept = torch.isfinite(negative_scores)
            negative_mean = negative_scores.masked_fill(~kept, 0.0).sum(dim=1) / kept.sum(dim=1).clamp_min(1)
            return negative_mean.mean() - positive_scores.mean()
        all_scores = torch.cat([positive_scores[:, None], negative_scores], dim=1)
        return (torch.logsumexp(all_scores, dim=1) - positive_scores).mean()

    def one_direction(
        self,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor,
        excluded: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss for anchors `(n, d)` with positives `(n, d)` and shared negatives `(K, d)`; `excluded` is `(n, K)` or
        `(1, K)`."""
        return self.loss_from_scores(*self.scores(anchors, positives, negatives, excluded))

    def forward(
        self,
        teacher_embeddings: torch.Tensor,
        student_embeddings: torch.Tensor,
        teacher_negatives: torch.Tensor,
        student_negatives: torch.Tensor,
        excluded: torch.Tensor | None = None,
    ) -> torch.Tensor:
        teacher_anchored = self.one_direction(teacher_embeddings, student_embeddings, student_negatives, excluded)
        student_anchored = self.one_direction(student_embeddings, teacher_embeddings, teacher_negatives, excluded)
        return 0.5 * (teacher_anchored + student_anchored)


@torch.no_grad()
def contrastive_diagnostics(positive_scores: torch.Tensor, negative_scores: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the critic knows, from one direction's scores: `accuracy`, the share of anchors whose positive scores
    above every (kept) negative, and `positive_probability`, the positive's mean softmax probability among the
    positive and the negatives."""
    all_scores = torch.cat([positive_scores[:, None], negative_scores], dim=1).float()
    probability = torch.softmax(all_scores, dim=1)[:, 0]
    beats = positive_scores > negative_scores.max(dim=1).values
    return {"accuracy": beats.float().mean(), "positive_probability": probability.mean()}
