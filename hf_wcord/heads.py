r"""The critic's projection heads f_T, f_S and the feature standardisation in front of them.

The WCoRD critic is g(x, y) = <t(x), s(y)> / tau, with x, y the pooled teacher and student features and
t = f_T(standardize_T(x)), s = f_S(standardize_S(y)). With `lipschitz="spectral"` (the default) each head is

    f(z) = ball(W z),   ball(u) = u / max(1, ||u||),   sigma_max(W) = 1,

so f is 1-Lipschitz with ||f(z)|| <= 1 (a projection onto a convex set is non-expansive, and ||W|| = 1). Then
|g(x, y) - g(x', y')| <= (||z_x - z_x'|| + ||z_y - z_y'||) / tau: the critic is (1/tau)-Lipschitz in each
standardised input and (sqrt(2)/tau)-Lipschitz in both together ([`critic_lipschitz_constant`] gives the constant in
the raw features). Unlike normalize(W z / sigma_max(W) + b), which spans the same functions as an unconstrained head,
the ball keeps the scale of W z, so the constraint binds.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrize import register_parametrization

from .distributed import all_reduce_with_grad, is_distributed

RELATIVE_EPS = 1e-2


class ExactSpectralNorm(nn.Module):
    r"""Weight parametrisation W -> W / sigma_max(W), with sigma_max computed exactly (no power-iteration estimate).

    Power iteration under-estimates sigma_max between updates, which leaves the map slightly above 1-Lipschitz;
    the exact largest singular value keeps ||W|| = 1 at every step (and is deterministic, with no state). It is
    computed as sigma_max(W) = sqrt(lambda_max(G)) with G the smaller Gram matrix (W W^T or W^T W), a symmetric
    eigenvalue problem about twice as fast as the SVD of W.
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        gram = weight @ weight.T if weight.shape[0] <= weight.shape[1] else weight.T @ weight
        sigma = torch.linalg.eigvalsh(gram)[-1].clamp_min(1e-24).sqrt()
        return weight / sigma


def spectral_norm(layer: nn.Linear) -> nn.Linear:
    """Constrain a linear layer to spectral norm 1 with [`ExactSpectralNorm`]."""
    register_parametrization(layer, "weight", ExactSpectralNorm())
    return layer


def project_to_ball(vectors: torch.Tensor) -> torch.Tensor:
    """u -> u / max(1, ||u||): the Euclidean projection onto the unit ball (1-Lipschitz)."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1.0)


def batch_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-dimension mean and (biased) variance of a batch, and its size. With several processes they are those of
    the global batch, summed over processes with a differentiable all-reduce (as `SyncBatchNorm`), so that every
    process standardises with the same statistics and the gradient flows through all of them."""
    if not is_distributed():
        return features.mean(dim=0), features.var(dim=0, unbiased=False), features.shape[0]
    local = torch.cat([features.sum(dim=0), (features * features).sum(dim=0), features.new_full((1,), len(features))])
    total = all_reduce_with_grad(local)
    dim = features.shape[1]
    rows = total[-1]
    mean = total[:dim] / rows
    variance = (total[dim : 2 * dim] / rows - mean * mean).clamp_min(0.0)
    return mean, variance, int(rows.item())


STATISTICS_CHOICES = ("running", "batch")


class FeatureStandardizer(nn.BatchNorm1d):
    r"""Per-dimension standardisation to unit root-mean-square norm, with no learned parameters:

        z = (x - mean) * c,   c_d = 1 / sqrt(D * (var_d + RELATIVE_EPS * mean_k var_k))

    The eps is relative to the data's own variance, so a dimension that barely varies is not blown up (an absolute
    eps of 1e-5 multiplies features with variance 1e-7 by 316), and the 1/sqrt(D) keeps ||z|| near 1 whatever the
    width D, so that the heads' unit Lipschitz bound is on the scale of the data.

    `statistics="running"` (default): in training too, the mean and variance are running statistics, constants of the
    step (no gradient through them), so the critic is one fixed function of each example's features and its Lipschitz
    constant holds while training. They are set exactly from the whole training set by [`fit`] (after the memory-bank
    fill), or from the first batch, and then follow the features with an exponential moving average (`momentum`) of
    each training batch's statistics, updated after the batch is standardised.

    `statistics="batch"`: v0.2's batch normalisation: the statistics of the (global) batch in training, with the
    gradient flowing through them; the critic value of one example then depends on the whole batch.
    """

    def __init__(self, dim: int, statistics: str = "running", momentum: float = 0.01) -> None:
        if statistics not in STATISTICS_CHOICES:
            raise ValueError(f"Unknown standardiser statistics {statistics!r}: use 'running' or 'batch'.")
        super().__init__(dim, affine=False, momentum=momentum if statistics == "running" else 0.1)
        self.statistics = statistics

    def scale(self, variance: torch.Tensor) -> torch.Tensor:
        """The per-dimension factor c for the given variances."""
        regularised = variance + RELATIVE_EPS * variance.mean() + 1e-12
        return regularised.mul(variance.numel()).rsqrt()

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        """Standardise with the running statistics, changing no state."""
        return (features.float() - self.running_mean) * self.scale(self.running_var)

    @torch.no_grad()
    def transform_(self, features: torch.Tensor) -> torch.Tensor:
        """[`transform`] in place, for an fp32 tensor that nothing else holds and that needs no gradient (the
        memory bank's stored features: K x D, read at every step)."""
        return features.sub_(self.running_mean).mul_(self.scale(self.running_var))

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> None:
        """Set the running statistics to those of `features` (rows: examples), e.g. the whole training set."""
        features = features.float()
        self.running_mean.copy_(features.mean(dim=0))
        self.running_var.copy_(features.var(dim=0, unbiased=features.shape[0] > 1))
        self.num_batches_tracked.fill_(1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = features.float()
        if not self.training or features.shape[0] < 2:
            return self.transform(features)
        mean, variance, rows = batch_statistics(features)
        if self.statistics == "batch":
            self._track(mean, variance, rows)
            return (features - mean) * self.scale(variance)
        if self.num_batches_tracked.item() == 0:
            self.fit_batch(mean, variance, rows)
        standardized = self.transform(features)
        self._track(mean, variance, rows)
        return standardized

    @torch.no_grad()
    def fit_batch(self, mean: torch.Tensor, variance: torch.Tensor, rows: int) -> None:
        self.running_mean.copy_(mean)
        self.running_var.copy_(variance * rows / (rows - 1))

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, variance: torch.Tensor, rows: int) -> None:
        self.running_mean.lerp_(mean.detach(), self.momentum)
        self.running_var.lerp_(variance.detach() * rows / (rows - 1), self.momentum)
        self.num_batches_tracked.add_(1)

    def current_scale(self) -> torch.Tensor:
        """The factor c of the running statistics (the one evaluation, and training with running statistics, use)."""
        return self.scale(self.running_var)


class ProjectionHead(nn.Module):
    r"""`x -> f(standardize(x))`, the critic's embedding of one side.

    - `lipschitz="spectral"`: f(z) = ball(W z) with sigma_max(W) = 1 (an MLP: W_2 relu(W_1 z), both normalised),
      1-Lipschitz with outputs in the unit ball.
    - `"gradient_penalty"`: the same f with W free, pushed towards the bound by [`critic_gradient_penalty`].
    - `"none"`: CRD's head f(z) = normalize(W z + b), unconstrained (and not Lipschitz near W z + b = 0).

    Always runs in fp32.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        head_type: str = "linear",
        lipschitz: str = "spectral",
        standardize: bool = True,
        statistics: str = "running",
    ) -> None:
        super().__init__()
        if lipschitz not in ("spectral", "gradient_penalty", "none"):
            raise ValueError(f"Unknown Lipschitz method {lipschitz!r}: use 'spectral', 'gradient_penalty' or 'none'.")
        self.lipschitz = lipschitz
        self.in_dim = in_dim
        self.standardize = FeatureStandardizer(in_dim, statistics) if standardize else nn.Identity()
        bias = lipschitz == "none"
        if head_type == "linear":
            layers: list[nn.Module] = [nn.Linear(in_dim, out_dim, bias=bias)]
        elif head_type == "mlp":
            layers = [nn.Linear(in_dim, in_dim, bias=bias), nn.ReLU(), nn.Linear(in_dim, out_dim, bias=bias)]
        else:
            raise ValueError(f"Unknown head type {head_type!r}: use 'linear' or 'mlp'.")
        if lipschitz == "spectral":
            layers = [spectral_norm(layer) if isinstance(layer, nn.Linear) else layer for layer in layers]
        self.net = nn.Sequential(*layers)

    def embed(self, standardized: torch.Tensor) -> torch.Tensor:
        """f(z) for already standardised features z."""
        projected = self.net(standardized.float())
        if self.lipschitz == "none":
            return nn.functional.normalize(projected, dim=-1)
        return project_to_ball(projected)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.embed(self.standardize(features.float()))

    def embed_stored(self, features: torch.Tensor) -> torch.Tensor:
        """f(standardize(x)) for stored features x (memory-bank negatives, a tensor of their own that this call may
        overwrite), with the running statistics and no update to them: today's critic applied to features written
        earlier."""
        if isinstance(self.standardize, FeatureStandardizer):
            return self.embed(self.standardize.transform_(features.float()))
        return self.embed(features.float())

    def weight_norm_bound(self) -> float:
        """Product of the spectral norms of the linear maps: f's Lipschitz constant in z (ball heads). 1 for spectral
        heads, whose maps are divided by their exact sigma_max; measured exactly (an SVD per map) otherwise."""
        if self.lipschitz == "spectral":
            return 1.0
        bound = 1.0
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                bound *= torch.linalg.matrix_norm(layer.weight.detach().float(), ord=2).item()
        return bound

    def lipschitz_bound(self) -> float:
        """Lipschitz constant of x -> f(standardize(x)) in the raw features, with the running statistics (in
        evaluation, and in training with `statistics="running"`): max_d c_d times [`weight_norm_bound`]. Infinite for
        CRD's normalised head."""
        if self.lipschitz == "none":
            return math.inf
        if not isinstance(self.standardize, FeatureStandardizer):
            return self.weight_norm_bound()
        return self.standardize.current_scale().max().item() * self.weight_norm_bound()


def critic_lipschitz_constant(teacher_head: ProjectionHead, student_head: ProjectionHead, temperature: float) -> float:
    r"""Lipschitz constant of g(x, y) = <t(x), s(y)> / tau in the raw pooled features (x, y) jointly:

        L = sqrt(L_T^2 + L_S^2) / tau

    with L_T, L_S the heads' [`ProjectionHead.lipschitz_bound`] (valid because ||t||, ||s|| <= 1)."""
    return math.hypot(teacher_head.lipschitz_bound(), student_head.lipschitz_bound()) / temperature


def critic_gradient_penalty(
    teacher_head: ProjectionHead,
    student_head: ProjectionHead,
    teacher_standardized: torch.Tensor,
    student_standardized: torch.Tensor,
) -> torch.Tensor:
    r"""One-sided gradient penalty (WGAN-GP style) on the critic tau * g(z_x, z_y) = <f_T(z_x), f_S(z_y)>, over the
    batch's positive pairs (z_x_i, z_y_i) and as many shuffled pairs (z_x_i, z_y_pi(i)):

        GP = mean over pairs of max(0, ||grad_{z_x} tau g|| - 1)^2 + max(0, ||grad_{z_y} tau g|| - 1)^2

    Zero for a critic that is (1/tau)-Lipschitz in each standardised input. The standardised features z come from
    the loss' own forward pass (detached), so the standardisers run once per step.
    """
    z_x = teacher_standardized.detach().float()
    z_y = student_standardized.detach().float()
    shuffled = torch.randperm(z_y.shape[0], device=z_y.device)
    z_x = torch.cat([z_x, z_x]).requires_grad_(True)
    z_y = torch.cat([z_y, z_y[shuffled]]).requires_grad_(True)
    critic = (teacher_head.embed(z_x) * student_head.embed(z_y)).sum()
    grad_x, grad_y = torch.autograd.grad(critic, (z_x, z_y), create_graph=True)
    excess = torch.relu(grad_x.norm(dim=-1) - 1.0).pow(2) + torch.relu(grad_y.norm(dim=-1) - 1.0).pow(2)
    return excess.mean()
