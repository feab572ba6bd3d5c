import pytest
import torch

from hf_wcord.heads import ProjectionHead, gradient_penalty


@pytest.mark.parametrize("head_type", ["linear", "mlp"])
def test_spectral_heads_stay_1_lipschitz_after_training(head_type):
    torch.manual_seed(0)
    head = ProjectionHead(32, 8, head_type=head_type, lipschitz="spectral")
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    inputs, targets = torch.randn(64, 32) * 5, torch.randn(64, 8) * 10
    for _ in range(50):
        loss = (head.project(inputs) - targets).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.eval()
    assert head.lipschitz_bound() <= 1.0 + 1e-2
    x, y = torch.randn(100, 32), torch.randn(100, 32)
    stretch = (head.net(x) - head.net(y)).norm(dim=1) / (x - y).norm(dim=1)
    assert stretch.max().item() <= 1.0 + 1e-2


def test_unconstrained_head_can_exceed_1_lipschitz():
    torch.manual_seed(0)
    head = ProjectionHead(16, 4, lipschitz="none")
    with torch.no_grad():
        head.net[0].weight.mul_(50)
    assert head.lipschitz_bound() > 1.0


def test_gradient_penalty_pulls_a_head_towards_1_lipschitz():
    torch.manual_seed(0)
    head = ProjectionHead(16, 4, lipschitz="gradient_penalty")
    with torch.no_grad():
        head.net[0].weight.mul_(20)
    features = torch.randn(64, 16)
    assert gradient_penalty(head, features).item() > 0
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        gradient_penalty(head, features).backward()
        optimizer.step()
    assert gradient_penalty(head, features).item() < 1e-3


def test_heads_output_unit_fp32_vectors_for_half_inputs():
    head = ProjectionHead(8, 4)
    out = head(torch.randn(3, 8).half())
    assert out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


def test_unknown_head_options_are_rejected():
    with pytest.raises(ValueError, match="head type"):
        ProjectionHead(4, 2, head_type="conv")
    with pytest.raises(ValueError, match="Lipschitz"):
        ProjectionHead(4, 2, lipschitz="clip")
