"""Local term: entropic optimal transport between the in-batch teacher and student embeddings (primal form)."""

from __future__ import annotations

import math

import torch
from torch import nn

SINKHORN_CHECK_EVERY = 10
GEOMLOSS_SCALING = 0.95


def _log_marginal(weights: torch.Tensor | None, size: int, device: torch.device) -> torch.Tensor:
    if weights is None:
        return torch.full((size,), -math.log(size), device=device, dtype=torch.float32)
    weights = weights.to(device=device, dtype=torch.float32)
    if weights.shape != (size,):
        raise ValueError(f"Marginal of shape {tuple(weights.shape)} does not match the cost matrix side {size}.")
    if (weights < 0).any():
        raise ValueError("Marginals must be non-negative.")
    return torch.log(weights / weights.sum())


def sinkhorn_plan(
    cost: torch.Tensor,
    eps: float,
    n_iters: int = 100,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    tol: float | None = None,
) -> torch.Tensor:
    r"""Entropic transport plan between two discrete measures, by log-domain Sinkhorn iterations in fp32.

    Solves
        P* = argmin_{P >= 0, P 1 = a, P^T 1 = b} <P, C> - eps * H(P),   H(P) = -sum_ij P_ij (log P_ij - 1)
    through the dual potentials f, g, updated alternately as
        f_i = eps * log a_i - eps * logsumexp_j((g_j - C_ij) / eps)
        g_j = eps * log b_j - eps * logsumexp_i((f_i - C_ij) / eps)
    and returns P*_ij = exp((f_i + g_j - C_ij) / eps). Working with potentials keeps every exponent <= 0, so the
    solver stays finite for small eps and for fp16/bf16 inputs (the cost is cast to fp32).

    Args:
        cost: `(n, m)` cost matrix C, or a batch `(..., n, m)` of independent problems solved together.
        eps: entropic regularisation eps > 0.
        n_iters: maximum number of (f, g) update pairs.
        a, b: marginals of length n and m (uniform when None); they are normalised to sum to one.
        tol: when set, stop as soon as the L1 error of the row marginal falls below it (checked every few steps).

    Returns:
        The fp32 plan, shaped like `cost`. Its column sums equal b exactly; its row sums approach a as iterations
        proceed. The plan is differentiable with respect to `cost` through the iterations.
    """
    if cost.dim() < 2:
        raise ValueError(f"`cost` must be an (n, m) matrix or a batch (..., n, m) of them, got {tuple(cost.shape)}.")
    if not eps > 0:
        raise ValueError(f"`eps` must be > 0, got {eps}.")
    cost = cost.float()
    n, m = cost.shape[-2:]
    log_a = _log_marginal(a, n, cost.device)
    log_b = _log_marginal(b, m, cost.device)
    f = torch.zeros(cost.shape[:-1], device=cost.device, dtype=torch.float32)
    g = torch.zeros((*cost.shape[:-2], m), device=cost.device, dtype=torch.float32)
    scaled_cost = cost / eps
    for iteration in range(n_iters):
        f = eps * (log_a - torch.logsumexp(g.unsqueeze(-2) / eps - scaled_cost, dim=-1))
        g = eps * (log_b - torch.logsumexp(f.unsqueeze(-1) / eps - scaled_cost, dim=-2))
        if tol is not None and (iteration + 1) % SINKHORN_CHECK_EVERY == 0:
            row_sums = torch.exp(f.unsqueeze(-1) / eps + g.unsqueeze(-2) / eps - scaled_cost).sum(dim=-1)
            if (row_sums - log_a.exp()).abs().sum(dim=-1).max() < tol:
                break
    return torch.exp(f.unsqueeze(-1) / eps + g.unsqueeze(-2) / eps - scaled_cost)


def cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Cost matrix C_ij = 1 - cos(x_i, y_j), in fp32; `(..., n, d)` and `(..., m, d)` give `(..., n, m)`."""
    x = nn.functional.normalize(x.float(), dim=-1)
    y = nn.functional.normalize(y.float(), dim=-1)
    return 1.0 - x @ y.transpose(-1, -2)


def entropic_ot_value(plan: torch.Tensor, cost: torch.Tensor, eps: float) -> torch.Tensor:
    r"""OT_eps = <P, C> + eps * KL(P || a b^T), with a, b the plan's own marginals (the regularised OT cost)."""
    plan, cost = plan.float(), cost.float()
    outer = plan.sum(dim=1, keepdim=True) * plan.sum(dim=0, keepdim=True)
    kl = torch.where(plan > 0, plan * (torch.log(plan) - torch.log(outer)), torch.zeros_like(plan)).sum()
    return (plan * cost).sum() + eps * kl


def geomloss_ot_value(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """geomloss' entropic OT_eps between uniform measures on x and y under the cosine cost, in fp32."""
    from geomloss import SamplesLoss

    # For unit vectors |x - y|^2 / 2 = 1 - cos(x, y): geomloss' p=2 cost is our cosine cost, and blur^2 = eps.
    solver = SamplesLoss(
        "sinkhorn", p=2, blur=math.sqrt(eps), debias=False, scaling=GEOMLOSS_SCALING, backend="tensorized"
    )
    return solver(nn.functional.normalize(x.float(), dim=-1), nn.functional.normalize(y.float(), dim=-1))


class SinkhornLoss(nn.Module):
    r"""Local WCoRD term: the transport cost of the entropic OT plan between the batch's embeddings.

        mu = (1/n) sum_i delta(t_i),  nu = (1/n) sum_j delta(s_j),  C_ij = 1 - cos(t_i, s_j)
        P* = argmin_{P in Pi(mu, nu)} <P, C> - eps H(P),   L_local = <P*, C> = sum_ij P*_ij C_ij

    Computed in fp32 whatever the input dtype. With `detach_plan=True` P* is a constant (envelope theorem) and the
    gradient flows through C only.

    `backend="geomloss"` returns geomloss' regularised cost OT_eps = <P*, C> + eps * KL(P* || mu x nu) instead: its
    gradient with respect to the points is the same, d OT_eps / dC = P*, but its value sits eps * KL above <P*, C>.
    """

    def __init__(
        self,
        eps: float = 0.05,
        n_iters: int = 50,
        tol: float | None = None,
        backend: str = "log_domain",
        detach_plan: bool = True,
    ) -> None:
        super().__init__()
        if backend not in ("log_domain", "geomloss"):
            raise ValueError(f"Unknown Sinkhorn backend {backend!r}: use 'log_domain' or 'geomloss'.")
        self.eps = eps
        self.n_iters = n_iters
        self.tol = tol
        self.backend = backend
        self.detach_plan = detach_plan

    def solve(
        self, teacher_embeddings: torch.Tensor, student_embeddings: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """L_local and the plan P* (None with the geomloss backend, whose plan stays inside geomloss)."""
        if self.backend == "geomloss":
            return geomloss_ot_value(teacher_embeddings, student_embeddings, self.eps), None
        cost = cosine_cost(teacher_embeddings, student_embeddings)
        if self.detach_plan:
            plan = sinkhorn_plan(cost.detach(), self.eps, self.n_iters, tol=self.tol)
        else:
            plan = sinkhorn_plan(cost, self.eps, self.n_iters, tol=self.tol)
        return (plan * cost).sum(dim=(-2, -1)), plan

    def forward(self, teacher_embeddings: torch.Tensor, student_embeddings: torch.Tensor) -> torch.Tensor:
        """L_local for `(n, d)` embeddings (a scalar), or for a batch `(P, n, d)` of independent problems (`(P,)`)."""
        return self.solve(teacher_embeddings, student_embeddings)[0]


@torch.no_grad()
def plan_diagnostics(plan: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""How well a batch of plans `(..., n, m)` (uniform marginals) is solved and how spread it is, averaged over the
    batch: `plan_entropy`, H(P) / log(n m) with H(P) = -sum_ij P_ij log P_ij (1: uniform coupling; log n / log(n m),
    about 0.5: a permutation), and `marginal_error`, the L1 error of the row sums, sum_i |(P 1)_i - 1/n|."""
    plan = plan.float()
    n, m = plan.shape[-2:]
    entropy = -torch.where(plan > 0, plan * plan.log(), torch.zeros_like(plan)).sum(dim=(-2, -1))
    error = (plan.sum(dim=-1) - 1.0 / n).abs().sum(dim=-1)
    return {"plan_entropy": (entropy / math.log(n * m)).mean(), "marginal_error": error.mean()}
