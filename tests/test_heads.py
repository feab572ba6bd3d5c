import math

import pytest
import torch

from hf_wcord.heads import (
    FeatureStandardizer,
    ProjectionHead,
    critic_gradient_penalty,
    critic_lipschitz_constant,
)
from hf_wcord.losses import WassersteinContrastiveLoss

TAU = 0.1


def _paired_features(rows: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlated teacher (24-d) and student (16-d) features with a large common offset, as pooled features have."""
    latent = torch.randn(rows, 8)
    teacher = latent @ torch.randn(8, 24) + 0.1 * torch.randn(rows, 24) + 5.0
    student = latent @ torch.randn(8, 16) + 0.1 * torch.randn(rows, 16) - 3.0
    return teacher, student


def _trained_critic(lipschitz: str) -> tuple[ProjectionHead, ProjectionHead]:
    """Heads trained for a while with the global term (in-batch negatives), then put in evaluation mode."""
    torch.manual_seed(0)
    teacher_head, student_head = ProjectionHead(24, 8, lipschitz=lipschitz), ProjectionHead(16, 8, lipschitz=lipschitz)
    loss = WassersteinContrastiveLoss(TAU)
    parameters = [*teacher_head.parameters(), *student_head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=0.05)
    for _ in range(60):
        x, y = _paired_features()
        t, s = teacher_head(x), student_head(y)
        value = loss(t, s, t.detach(), s.detach(), torch.eye(64, dtype=torch.bool))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    return teacher_head.eval(), student_head.eval()


def _largest_ratio(teacher_head: ProjectionHead, student_head: ProjectionHead) -> float:
    """max |g(x, y) - g(x', y')| / ||(x, y) - (x', y')|| over random pairs of data points, then gradient ascent on
    the ratio from close pairs around them (the adversarial search)."""

    def critic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (teacher_head(x) * student_head(y)).sum(dim=-1) / TAU

    def ratio(x, y, x2, y2):
        distance = torch.cat([x - x2, y - y2], dim=-1).norm(dim=-1)
        return (critic(x, y) - critic(x2, y2)).abs() / distance

    torch.manual_seed(1)
    x, y = _paired_features(256)
    x2, y2 = _paired_features(256)
    best = ratio(x, y, x2, y2).max().item()
    start_x, start_y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    offset_x = (1e-2 * torch.randn_like(x)).requires_grad_(True)
    offset_y = (1e-2 * torch.randn_like(y)).requires_grad_(True)
    # Steps on the scale of the features (their spread is a few units per dimension).
    optimizer = torch.optim.Adam([start_x, start_y, offset_x, offset_y], lr=0.5)
    for _ in range(300):
        values = ratio(start_x, start_y, start_x + offset_x, start_y + offset_y)
        best = max(best, values.max().item())
        optimizer.zero_grad()
        (-values.sum()).backward()
        optimizer.step()
    return best


def test_spectral_critic_stays_within_its_stated_lipschitz_constant():
    teacher_head, student_head = _trained_critic("spectral")
    bound = critic_lipschitz_constant(teacher_head, student_head, TAU)
    assert math.isfinite(bound)
    ratio = _largest_ratio(teacher_head, student_head)
    assert ratio <= bound * (1 + 1e-3)
    # The bound is not vacuous: the adversarial search gets within a factor of a few of it.
    assert ratio > bound / 10


def test_spectral_critic_keeps_its_constant_in_training_mode():
    """In training the heads standardise with running statistics, constants of the step: the critic of each training
    forward is one fixed function, within the constant stated at that step, for pairs that share the batch."""
    teacher_head, student_head = _trained_critic("spectral")
    teacher_head.train()
    student_head.train()
    torch.manual_seed(1)
    x, y = _paired_features(128)
    offset_x = (1e-2 * torch.randn_like(x)).requires_grad_(True)
    offset_y = (1e-2 * torch.randn_like(y)).requires_grad_(True)
    start_x, start_y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([start_x, start_y, offset_x, offset_y], lr=0.5)
    worst = 0.0
    for _ in range(150):
        bound = critic_lipschitz_constant(teacher_head, student_head, TAU)
        batch_x = torch.cat([start_x, start_x + offset_x])
        batch_y = torch.cat([start_y, start_y + offset_y])
        critic = (teacher_head(batch_x) * student_head(batch_y)).sum(dim=-1) / TAU
        distance = torch.cat([offset_x, offset_y], dim=-1).norm(dim=-1)
        ratio = (critic[:128] - critic[128:]).abs() / distance
        worst = max(worst, ratio.max().item() / bound)
        optimizer.zero_grad()
        (-ratio.sum()).backward()
        optimizer.step()
    assert worst <= 1 + 1e-3
    assert worst > 0.1


def test_unconstrained_crd_head_exceeds_that_constant():
    teacher_head, student_head = _trained_critic("none")
    assert critic_lipschitz_constant(teacher_head, student_head, TAU) == math.inf
    # The constant a spectral critic would have with the same standardisation.
    reference = (
        math.hypot(
            teacher_head.standardize.current_scale().max().item(),
            student_head.standardize.current_scale().max().item(),
        )
        / TAU
    )
    assert _largest_ratio(teacher_head, student_head) > 3 * reference


@pytest.mark.parametrize("head_type", ["linear", "mlp"])
def test_spectral_heads_keep_unit_weight_norm_and_outputs_in_the_ball(head_type):
    torch.manual_seed(0)
    head = ProjectionHead(32, 8, head_type=head_type, lipschitz="spectral")
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    inputs, targets = torch.randn(64, 32) * 5, torch.randn(64, 8) * 10
    for _ in range(50):
        loss = (head(inputs) - targets).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for layer in head.net:
        if isinstance(layer, torch.nn.Linear):
            assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == pytest.approx(1.0, abs=1e-4)
    assert head(inputs).norm(dim=1).max().item() <= 1.0 + 1e-6


def test_gradient_penalty_pulls_an_unconstrained_critic_within_the_bound():
    torch.manual_seed(0)
    teacher_head, student_head = (
        ProjectionHead(16, 4, lipschitz="gradient_penalty"),
        ProjectionHead(12, 4, lipschitz="gradient_penalty"),
    )
    with torch.no_grad():
        teacher_head.net[0].weight.mul_(30)
        student_head.net[0].weight.mul_(30)
    z_x, z_y = 0.05 * torch.randn(64, 16), 0.05 * torch.randn(64, 12)
    initial = critic_gradient_penalty(teacher_head, student_head, z_x, z_y).item()
    assert initial > 1.0
    optimizer = torch.optim.Adam([*teacher_head.parameters(), *student_head.parameters()], lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        critic_gradient_penalty(teacher_head, student_head, z_x, z_y).backward()
        optimizer.step()
    assert critic_gradient_penalty(teacher_head, student_head, z_x, z_y).item() < 1e-3 * initial


def test_standardizer_eps_is_relative_to_the_data_variance():
    torch.manual_seed(0)
    standardizer = FeatureStandardizer(4)
    features = torch.randn(256, 4) * torch.tensor([1.0, 1.0, 1.0, 1e-4])
    out = standardizer(features)
    # A near-constant dimension is not blown up to unit variance (an absolute eps of 1e-5 would multiply it by 100).
    assert out[:, 3].std().item() < 1e-2 * out[:, 0].std().item()
    # Unit root-mean-square norm overall.
    assert out.pow(2).sum(dim=1).mean().item() == pytest.approx(0.75, rel=0.05)


def test_running_standardizer_holds_its_statistics_constant_within_a_step_and_then_tracks_the_batches():
    torch.manual_seed(0)
    standardizer = FeatureStandardizer(3)
    first = torch.randn(8, 3) * 4 + 2
    standardizer(first)  # the first batch sets the statistics
    assert torch.allclose(standardizer.running_mean, first.mean(dim=0))
    before = standardizer.running_mean.clone(), standardizer.running_var.clone()
    features = (torch.randn(8, 3) * 4 + 2).requires_grad_(True)
    out = standardizer(features)
    # In training, the output is that of a fixed function (the statistics before the step) ...
    expected = (features - before[0]) * standardizer.scale(before[1])
    assert torch.allclose(out, expected)
    # ... with no gradient through the statistics: d out / d x = c.
    (gradient,) = torch.autograd.grad(out.sum(), features)
    assert torch.allclose(gradient, standardizer.scale(before[1]).expand(8, 3))
    # After the step, the statistics move towards the batch's with the momentum.
    assert torch.allclose(standardizer.running_mean, torch.lerp(before[0], features.detach().mean(dim=0), 0.01))
    standardizer.fit(torch.arange(12.0).reshape(4, 3))
    assert standardizer.running_mean.tolist() == [4.5, 5.5, 6.5]


def test_batch_standardizer_updates_its_statistics_once_per_training_forward_and_differentiates_through_them():
    standardizer = FeatureStandardizer(3, statistics="batch")
    features = torch.randn(8, 3, requires_grad=True)
    out = standardizer(features)
    assert int(standardizer.num_batches_tracked) == 1
    # Every column of the output sums to 0 whatever the input: through the batch mean, its gradient is 0 (held
    # constant, the mean would give c for every row).
    (gradient,) = torch.autograd.grad(out.sum(), features, retain_graph=True)
    assert gradient.abs().max().item() < 1e-5
    # A rescaled batch gives the same output: no gradient along the features themselves.
    (gradient,) = torch.autograd.grad((out * out.detach()).sum(), features)
    assert (gradient * features).sum().abs().item() < 1e-4


def test_heads_output_fp32_for_half_inputs():
    head = ProjectionHead(8, 4, lipschitz="none")
    out = head(torch.randn(3, 8).half())
    assert out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


def test_unknown_head_options_are_rejected():
    with pytest.raises(ValueError, match="head type"):
        ProjectionHead(4, 2, head_type="conv")
    with pytest.raises(ValueError, match="Lipschitz"):
        ProjectionHead(4, 2, lipschitz="clip")
