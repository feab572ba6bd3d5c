import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from hf_wcord.losses import SinkhornLoss, cosine_cost, entropic_ot_value, sinkhorn_plan


def _exact_ot_cost(cost: torch.Tensor) -> float:
    """Optimal transport cost between two uniform n-point measures: an assignment problem, divided by n."""
    rows, cols = linear_sum_assignment(cost.numpy())
    return float(cost.numpy()[rows, cols].sum() / cost.shape[0])


def test_plan_converges_to_exact_ot_as_eps_shrinks():
    torch.manual_seed(0)
    for n in (6, 16):
        cost = torch.cdist(torch.randn(n, 3), torch.randn(n, 3)) ** 2
        cost = cost / cost.max()
        exact = _exact_ot_cost(cost)
        gaps = []
        for eps in (0.1, 0.03, 0.01, 0.003):
            plan = sinkhorn_plan(cost, eps, n_iters=5000)
            gaps.append((plan * cost).sum().item() - exact)
        assert all(gap >= -1e-4 for gap in gaps), gaps
        assert all(later <= earlier + 1e-5 for earlier, later in zip(gaps[:-1], gaps[1:], strict=True)), gaps
        assert gaps[-1] < 5e-3, gaps


def test_plan_marginals_hold():
    torch.manual_seed(1)
    cost = torch.rand(12, 9)
    a = torch.rand(12) + 0.1
    b = torch.rand(9) + 0.1
    plan = sinkhorn_plan(cost, 0.05, n_iters=500, a=a, b=b)
    assert torch.allclose(plan.sum(dim=1), a / a.sum(), atol=1e-4)
    assert torch.allclose(plan.sum(dim=0), b / b.sum(), atol=1e-4)
    uniform = sinkhorn_plan(cost[:9], 0.05, n_iters=500)
    assert torch.allclose(uniform.sum(dim=1), torch.full((9,), 1 / 9), atol=1e-4)
    assert torch.allclose(uniform.sum(dim=0), torch.full((9,), 1 / 9), atol=1e-4)


def test_tolerance_stops_early_with_marginals_within_it():
    cost = torch.rand(10, 10)
    plan = sinkhorn_plan(cost, 0.1, n_iters=10_000, tol=1e-6)
    assert (plan.sum(dim=1) - 0.1).abs().sum() < 1e-6


def test_plan_finite_for_tiny_eps_with_fp16_inputs():
    torch.manual_seed(2)
    cost = cosine_cost(torch.randn(32, 16).half(), torch.randn(32, 16).half()).half()
    plan = sinkhorn_plan(cost, 1e-3, n_iters=200)
    assert plan.dtype == torch.float32
    assert torch.isfinite(plan).all()
    assert plan.sum().item() == pytest.approx(1.0, abs=1e-3)


def test_plan_rejects_bad_arguments():
    with pytest.raises(ValueError, match="eps"):
        sinkhorn_plan(torch.rand(3, 3), 0.0)
    with pytest.raises(ValueError, match="matrix"):
        sinkhorn_plan(torch.rand(3), 0.1)
    with pytest.raises(ValueError, match="does not match"):
        sinkhorn_plan(torch.rand(3, 3), 0.1, a=torch.ones(4))


def test_geomloss_backend_agrees_with_our_solver_in_value_and_gradient():
    torch.manual_seed(3)
    t = torch.nn.functional.normalize(torch.randn(40, 8), dim=1)
    s = torch.nn.functional.normalize(torch.randn(40, 8), dim=1).requires_grad_(True)
    cost = cosine_cost(t, s)
    plan = sinkhorn_plan(cost.detach(), 0.05, n_iters=1000)
    ours_regularised = entropic_ot_value(plan, cost.detach(), 0.05)
    theirs = SinkhornLoss(eps=0.05, backend="geomloss")(t, s)
    assert theirs.item() == pytest.approx(ours_regularised.item(), abs=2e-3)
    (grad_theirs,) = torch.autograd.grad(theirs, s)
    (grad_ours,) = torch.autograd.grad(SinkhornLoss(eps=0.05, n_iters=1000)(t, s), s)
    cosine = torch.nn.functional.cosine_similarity(grad_ours.flatten(), grad_theirs.flatten(), dim=0)
    assert cosine.item() > 0.98


def test_local_loss_through_the_plan_differs_from_detached_only_in_gradient():
    torch.manual_seed(4)
    t = torch.randn(6, 4)
    s = torch.randn(6, 4, requires_grad=True)
    detached = SinkhornLoss(eps=0.1, n_iters=300, detach_plan=True)(t, s)
    full = SinkhornLoss(eps=0.1, n_iters=300, detach_plan=False)(t, s)
    assert detached.item() == pytest.approx(full.item(), rel=1e-6)
    (grad_full,) = torch.autograd.grad(full, s)
    assert torch.isfinite(grad_full).all()


def test_local_loss_is_the_cost_of_the_identity_for_matching_points():
    x = torch.nn.functional.normalize(torch.randn(8, 5), dim=1)
    assert SinkhornLoss(eps=0.01, n_iters=500)(x, x).item() == pytest.approx(0.0, abs=1e-3)
    assert np.isclose(cosine_cost(x, x).diagonal().abs().max().item(), 0.0, atol=1e-6)


def test_a_batch_of_problems_is_solved_as_each_alone():
    torch.manual_seed(3)
    teacher, student = torch.randn(3, 16, 8), torch.randn(3, 16, 8)
    loss = SinkhornLoss(eps=0.1, n_iters=100)
    batched = loss(teacher, student)
    assert batched.shape == (3,)
    for k in range(3):
        torch.testing.assert_close(batched[k], loss(teacher[k], student[k]), rtol=1e-5, atol=1e-6)
