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


def test_memory_bank_first_write_is_the_embedding_then_momentum():
    bank = MemoryBank(num_slots=10, dim=4, momentum=0.5)
    first, second = _unit(2, 4), _unit(2, 4)
    index = torch.tensor([3, 7])
    bank.update(index, first)
    assert torch.allclose(bank.memory[index], first, atol=1e-6)
    bank.update(index, second)
    expected = torch.nn.functional.normalize(0.5 * first + 0.5 * second, dim=1)
    assert torch.allclose(bank.memory[index], expected, atol=1e-6)
    untouched = [i for i in range(10) if i not in (3, 7)]
    assert not bank.written[untouched].any() and bank.written[index].all()


def test_memory_bank_masks_own_slot_and_never_written_slots():
    bank = MemoryBank(num_slots=10, dim=4)
    bank.update(torch.arange(6), _unit(6, 4))
    index = torch.tensor([3, 5])
    torch.manual_seed(0)
    slots, excluded = bank.draw(50, index)
    assert excluded.shape == (2, 50)
    never_written = slots >= 6
    assert torch.equal(excluded[0], (slots == 3) | never_written)
    assert torch.equal(excluded[1], (slots == 5) | never_written)
    assert torch.equal(bank.negatives(slots), bank.memory[slots])


def test_label_aware_negatives_mask_the_anchor_class():
    bank = MemoryBank(num_slots=8, dim=4)
    slot_labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    bank.update(torch.arange(8), _unit(8, 4), slot_labels)
    torch.manual_seed(0)
    slots, excluded = bank.draw(40, torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert torch.equal(excluded[0], slot_labels[slots] == 0)
    assert torch.equal(excluded[1], slot_labels[slots] == 1)


def test_cold_start_bank_holds_random_unit_slots_used_as_negatives():
    bank = MemoryBank(num_slots=5, dim=3, cold_start=True)
    assert torch.allclose(bank.memory.norm(dim=1), torch.ones(5))
    _, excluded = bank.draw(20, torch.tensor([-1]))
    assert not excluded.any()


def test_ball_bank_keeps_embedding_norms_below_one():
    bank = MemoryBank(num_slots=4, dim=3, sphere=False)
    small = 0.3 * _unit(4, 3)
    bank.update(torch.arange(4), small)
    bank.update(torch.arange(4), small)
    assert torch.allclose(bank.memory, small, atol=1e-6)


def test_memory_bank_rejects_out_of_range_index():
    with pytest.raises(IndexError, match="0..N-1"):
        MemoryBank(4, 2).update(torch.tensor([4]), _unit(1, 2))


def test_queue_starts_empty_is_fifo_and_masks_own_older_embeddings():
    queue = FeatureQueue(size=5, dim=3)
    _, excluded = queue.draw(5, torch.tensor([0]))
    assert excluded.all()
    first, second = _unit(3, 3), _unit(4, 3)
    queue.update(torch.tensor([10, 11, 12]), first)
    _, excluded = queue.draw(5, torch.tensor([11]))
    assert excluded.tolist() == [[False, True, False, True, True]]
    queue.update(torch.tensor([13, 14, 15, 16]), second)
    assert torch.allclose(queue.negatives()[[2, 3, 4, 0, 1]], torch.cat([first[2:], second]))
    assert int(queue.pointer) == 2
    _, excluded = queue.draw(5, torch.tensor([12, 99]))
    assert excluded.tolist() == [[False, False, True, False, False], [False] * 5]
