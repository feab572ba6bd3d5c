"""Projection heads f_T, f_S of the critic: map pooled features to the unit sphere, kept 1-Lipschitz."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrize import register_parametrization


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


class FeatureStandardizer(nn.BatchNorm1d):
    r"""Per-dimension standardisation x -> (x - mean) / sqrt(var + 1e-5), with no learned parameters.

    Batch statistics in training (running statistics for a batch of one), running statistics in evaluation. Pooled
    transformer features share a large common component; without this fixed normalisation a norm-bounded head
    cannot separate examples and the contrastive term stays at chance level.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim, affine=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.training and features.shape[0] == 1:
            return nn.functional.batch_norm(
                features, self.running_mean, self.running_var, training=False, eps=self.eps
            )
        return super().forward(features)


class ProjectionHead(nn.Module):
    r"""`x -> normalize(f(x))` with f linear (or linear-ReLU-linear) and, by default, spectrally normalised.

    With `lipschitz="spectral"` every linear map is divided by its largest singular value, so
    ||f(x) - f(y)|| <= ||x - y|| (ReLU is 1-Lipschitz). `"gradient_penalty"` leaves the weights free and relies on
    [`gradient_penalty`] in the loss; `"none"` is the unconstrained (CRD) head. The input is first standardised by
    [`FeatureStandardizer`] (a fixed normalisation of the data, not part of f). Always runs in fp32.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        head_type: str = "linear",
        lipschitz: str = "spectral",
        standardize: bool = True,
    ) -> None:
        super().__init__()
        self.standardize = FeatureStandardizer(in_dim) if standardize else nn.Identity()
        if head_type == "linear":
            layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        elif head_type == "mlp":
            layers = [nn.Linear(in_dim, in_dim), nn.ReLU(), nn.Linear(in_dim, out_dim)]
        else:
            raise ValueError(f"Unknown head type {head_type!r}: use 'linear' or 'mlp'.")
        if lipschitz == "spectral":
            layers = [spectral_norm(layer) if isinstance(layer, nn.Linear) else layer for layer in layers]
        elif lipschitz not in ("gradient_penalty", "none"):
            raise ValueError(f"Unknown Lipschitz method {lipschitz!r}: use 'spectral', 'gradient_penalty' or 'none'.")
        self.net = nn.Sequential(*layers)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """f(standardize(x)) before the final normalisation."""
        return self.net(self.standardize(features.float()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.project(features), dim=-1)

    def lipschitz_bound(self) -> float:
        """Product of the exact spectral norms of the linear maps: an upper bound on f's Lipschitz constant."""
        bound = 1.0
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                bound *= torch.linalg.matrix_norm(layer.weight.detach().float(), ord=2).item()
        return bound


def gradient_penalty(head: ProjectionHead, features: torch.Tensor) -> torch.Tensor:
    r"""One-sided gradient penalty that pushes f towards 1-Lipschitz:

        GP = (1/n) sum_i max(0, ||J_f(x_i)^T u_i|| - 1)^2,   u_i uniform on the unit sphere of f's output space

    x_i are the standardised features. `J_f(x)^T u` is the gradient of <f(x), u>; its norm is at most the Lipschitz
    constant of f at x, so the penalty is zero for any 1-Lipschitz f and its expectation is positive wherever f
    stretches some direction.
    """
    inputs = head.standardize(features.detach().float()).detach().requires_grad_(True)
    outputs = head.net(inputs)
    directions = nn.functional.normalize(torch.randn_like(outputs), dim=-1)
    (gradients,) = torch.autograd.grad((outputs * directions).sum(), inputs, create_graph=True)
    return torch.relu(gradients.norm(dim=-1) - 1.0).pow(2).mean()
