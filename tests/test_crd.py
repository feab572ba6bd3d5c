"""The CRD baseline's NCE loss, against RepDistiller's formula computed independently on fixed inputs."""

import math

import pytest
import torch

from hf_wcord.losses.crd import CRDNCELoss, chance_nce_loss, nce_loss


def _unit(*shape):
    return torch.nn.functional.normalize(torch.randn(*shape), dim=-1)


def _reference_direction(anchors, positives, negatives, tau, num_data):
    """RepDistiller's ContrastMemory (Z fixed from the first batch) and ContrastLoss, written out with floats."""
    rows = []
    for i in range(anchors.shape[0]):
        row = [math.exp(float(anchors[i] @ positives[i]) / tau)]
        row += [math.exp(float(anchors[i] @ negatives[j]) / tau) for j in range(negatives.shape[0])]
        rows.append(row)
    z = sum(sum(row) for row in rows) / (len(rows) * len(rows[0])) * num_data
    k = negatives.shape[0]
    noise = k / num_data
    total = 0.0
    for row in rows:
        x = [value / z for value in row]
        total += math.log(x[0] / (x[0] + noise + 1e-7))
        total += sum(math.log(noise / (value + noise + 1e-7)) for value in x[1:])
    return -total / len(rows)


def test_crd_nce_equals_repdistillers_formula_on_fixed_inputs():
    torch.manual_seed(0)
    n, k, d, tau, num_data = 4, 9, 6, 0.07, 50
    t, s = _unit(n, d), _unit(n, d)
    student_positives, teacher_positives = _unit(n, d), _unit(n, d)
    student_negatives, teacher_negatives = _unit(k, d), _unit(k, d)
    loss = CRDNCELoss(num_data, tau)
    value, (teacher_scores, student_scores) = loss(
        t, s, (student_positives, student_negatives), (teacher_positives, teacher_negatives)
    )
    expected = _reference_direction(t, student_positives, student_negatives, tau, num_data)
    expected += _reference_direction(s, teacher_positives, teacher_negatives, tau, num_data)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert teacher_scores.shape == (n, k + 1)
    # Z is fixed at the first call and kept: a second call with other inputs uses it.
    normalizers = loss.normalizers.clone()
    loss(s, t, (teacher_positives, teacher_negatives), (student_positives, student_negatives))
    assert torch.equal(loss.normalizers, normalizers)


def test_nce_leaves_out_excluded_negatives():
    scores = torch.tensor([[2.0, 0.5, 1.5, 0.1]])
    reduced = torch.tensor([[2.0, 0.5, 0.1]])
    masked = torch.tensor([[2.0, 0.5, float("nan"), 0.1]])
    noise_terms = nce_loss(masked, 10) - nce_loss(reduced, 10)
    # Same K (the noise ratio counts the slots drawn), the excluded term gone.
    expected = math.log(3 / 10 / (0.1 + 3 / 10 + 1e-7)) + math.log(3 / 10 / (0.5 + 3 / 10 + 1e-7))
    expected -= math.log(2 / 10 / (0.1 + 2 / 10 + 1e-7)) + math.log(2 / 10 / (0.5 + 2 / 10 + 1e-7))
    positive = math.log(2.0 / (2.0 + 3 / 10 + 1e-7)) - math.log(2.0 / (2.0 + 2 / 10 + 1e-7))
    assert noise_terms.item() == pytest.approx(-(expected + positive), rel=1e-5)
    assert torch.isfinite(nce_loss(masked, 10))
    assert nce_loss(scores, 10).item() > 0


@pytest.mark.parametrize(("num_negatives", "num_data"), [(999, 1000), (1999, 2000), (4096, 50000)])
def test_chance_nce_loss_is_the_lowest_loss_of_a_critic_that_scores_every_pair_alike(num_negatives, num_data):
    def loss_at(x):
        return nce_loss(torch.full((3, num_negatives + 1), x, dtype=torch.float64), num_data).item()

    at_noise_level = loss_at(1 / num_data)
    # rel 1e-3: nce_loss adds 1e-7 to each denominator, which the closed form leaves out
    assert at_noise_level == pytest.approx(chance_nce_loss(num_negatives), rel=1e-3)
    assert chance_nce_loss(num_negatives) == pytest.approx(math.log(num_negatives) + 1, abs=1e-3)
    assert loss_at(1.5 / num_data) > at_noise_level
    assert loss_at(0.5 / num_data) > at_noise_level


def test_chance_nce_loss_refuses_no_negatives():
    with pytest.raises(ValueError, match="at least one negative"):
        chance_nce_loss(0)
