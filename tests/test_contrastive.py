import math

import pytest
import torch

from hf_wcord.losses import FeatureQueue, MemoryBank, WassersteinContrastiveLoss


def _unit(*shape):
    return torch.nn.functional.normalize(torch.randn(*shape), dim=-1)


def _reference_infonce(anchors, positives, negatives, excluded, tau):
    """Direct per-anchor evaluation of -[g(a, p) - log(exp g(a, p) + sum_j exp g(a, n_j))]."""
    total = 0.0
    for i in range(anchors.shape[0]):
        positive = float(anchors[i] @ positives[i]) / tau
        denominator = math.exp(positive)
        for j in range(negatives.shape[0]):
            if excluded is None or not excluded[i, j]:
                denominator += math.exp(float(anchors[i] @ negatives[j]) / tau)
        total += -(positive - math.log(denominator))
    return total / anchors.shape[0]


def test_global_term_equals_direct_reference():
    torch.manual_seed(0)
    t, s = _unit(5, 6), _unit(5, 6)
    t_neg, s_neg = _unit(7, 6), _unit(7, 6)
    excluded = torch.zeros(5, 7, dtype=torch.bool)
    excluded[1, 3] = excluded[4, 0] = True
    tau = 0.2
    loss = WassersteinContrastiveLoss(tau)(t, s, t_neg, s_neg, excluded)
    expected = 0.5 * (_reference_infonce(t, s, s_neg, excluded, tau) + _reference_infonce(s, t, t_neg, excluded, tau))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_dual_objective_equals_mean_positive_minus_mean_negative_critic():
    torch.manual_seed(1)
    t, s, t_neg, s_neg = _unit(4, 3), _unit(4, 3), _unit(6, 3), _unit(6, 3)
    tau = 0.5
    loss = WassersteinContrastiveLoss(tau, objective="dual")(t, s, t_neg, s_neg)
    positive = (t * s).sum(1).mean() / tau
    teacher_anchored = (t @ s_neg.T).mean() / tau - positive
    student_anchored = (s @ t_neg.T).mean() / tau - positive
    assert loss.item() == pytest.approx(0.5 * (teacher_anchored + student_anchored).item(), rel=1e-5)


def test_global_term_prefers_aligned_pairs_and_is_fp32():
    torch.manual_seed(2)
    t = _unit(8, 16)
    negatives = _unit(32, 16)
    loss = WassersteinContrastiveLoss(0.07)
    aligned = loss(t.half(), t.half(), negatives, negatives)
    shuffled = loss(t, t[torch.randperm(8)], negatives, negatives)
    assert aligned.dtype == torch.float32
    assert aligned.item() < shuffled.item()


def test_memory_bank_momentum_update_and_own_slot_mask():
    bank = MemoryBank(num_slots=10, dim=4, momentum=0.5)
    before = bank.memory.clone()
    new = _unit(2, 4)
    index = torch.tensor([3, 7])
    bank.update(index, new)
    expected = torch.nn.functional.normalize(0.5 * before[index] + 0.5 * new, dim=1)
    assert torch.allclose(bank.memory[index], expected, atol=1e-6)
    untouched = [i for i in range(10) if i not in (3, 7)]
    assert torch.equal(bank.memory[untouched], before[untouched])
    torch.manual_seed(0)
    slots, excluded = bank.draw(50, index)
    assert excluded.shape == (2, 50)
    assert torch.equal(excluded[0], slots == 3) and torch.equal(excluded[1], slots == 7)
    assert torch.equal(bank.negatives(slots), bank.memory[slots])


def test_memory_bank_rejects_out_of_range_index():
    with pytest.raises(IndexError, match="0..N-1"):
        MemoryBank(4, 2).update(torch.tensor([4]), _unit(1, 2))


def test_queue_is_fifo():
    queue = FeatureQueue(size=5, dim=3)
    first, second = _unit(3, 3), _unit(4, 3)
    queue.update(None, first)
    queue.update(None, second)
    assert torch.allclose(queue.negatives()[[2, 3, 4, 0, 1]], torch.cat([first[2:], second]))
    assert int(queue.pointer) == 2
