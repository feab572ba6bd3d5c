"""The learning curves' report: paired differences over seeds with their 95% t-interval, for the methods and for each
ablation against the defaults and the baselines."""

import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks", "quality"))

from curve_report import (  # noqa: E402
    ablation_lines,
    chance_to_clear,
    chance_to_clear_all,
    mixed_teacher_lines,
    noise_floor_lines,
    paired_difference,
    pooled_ablation_lines,
    pooled_ablations,
    pooled_difference,
    pooled_differences,
    seeds_to_clear_all,
    summarise_point,
)

# Pool accuracy per method and seed; seed 3 of "kd" has no twin in the ablation, so pairing drops it there.
SCORES = {
    "kd": {0: 0.80, 1: 0.82, 2: 0.81, 3: 0.70},
    "crd+kd": {0: 0.83, 1: 0.84, 2: 0.82, 3: 0.71},
    "wcord+kd": {0: 0.82, 1: 0.83, 2: 0.83, 3: 0.72},
    "wcord+kd, heavier": {0: 0.84, 1: 0.83, 2: 0.85},
}
# The 0.975 quantile of Student's t with n - 1 degrees of freedom, for n seeds.
T_QUANTILE = {3: 4.30265273, 4: 3.18244631, 7: 2.44691185}


def cell():
    runs = [
        {"method": method, "phase": "final", "seed": seed, "pool": score, "eval": score, "train_seconds": 60.0}
        for method, seeds in SCORES.items()
        for seed, score in seeds.items()
    ]
    return {"task": "sst2", "student": "layers3", "train_examples": 1000, "steps_multiple": 4, "runs": runs}


def expected(differences):
    """Mean and 95% t-interval of per-seed differences in points, written out from the formula."""
    n = len(differences)
    mean = sum(differences) / n
    deviation = (sum((d - mean) ** 2 for d in differences) / (n - 1)) ** 0.5
    half = T_QUANTILE[n] * deviation / n**0.5
    return mean, mean - half, mean + half


def test_paired_difference_is_the_t_interval_of_per_seed_differences():
    difference = paired_difference(SCORES["wcord+kd"], SCORES["kd"])
    mean, low, high = expected([2.0, 1.0, 2.0, 2.0])
    assert difference["seeds"] == 4
    assert difference["mean"] == pytest.approx(mean)
    assert difference["low"] == pytest.approx(low)
    assert difference["high"] == pytest.approx(high)
    assert paired_difference({0: 0.5}, {0: 0.4}) is None


def test_ablation_is_compared_with_the_defaults_and_each_baseline_on_shared_seeds():
    entry = summarise_point(cell())["ablations"]["wcord+kd, heavier"]
    for key, differences in {
        "defaults_minus_it": [-2.0, 0.0, -2.0],
        "it_minus_kd": [4.0, 1.0, 4.0],
        "it_minus_crd+kd": [1.0, -1.0, 3.0],
    }.items():
        mean, low, high = expected(differences)
        assert entry[key]["seeds"] == 3
        assert (entry[key]["mean"], entry[key]["low"], entry[key]["high"]) == pytest.approx((mean, low, high))


def test_ablation_table_has_a_column_per_comparison():
    point = {**cell(), "summary": summarise_point(cell())}
    lines = ablation_lines([point])
    header, row = lines[-3], lines[-1]
    assert header.split(" | ")[-3:] == ["defaults - ablation", "ablation - kd", "ablation - crd+kd |"]
    assert row.startswith("| layers3, 4x steps | 1,000 | wcord+kd, heavier | 0.8400 | -1.33 [")
    assert row.count("[") == 3


def test_the_noise_floor_is_the_t_chance_of_a_no_better_method_clearing_the_margin():
    # wcord+kd - kd per seed: 2, 1, 2, 2 points; SE = 0.5 / 2 = 0.25 with 3 degrees of freedom.
    difference = paired_difference(SCORES["wcord+kd"], SCORES["kd"])
    assert difference["standard_error"] == pytest.approx(0.25)
    # F_t(1.2; 3), from the closed form of Student's t with 3 degrees of freedom.
    x = 0.3 / 0.25
    closed_form = 0.5 + (math.atan(x / math.sqrt(3)) + (x / math.sqrt(3)) / (1 + x * x / 3)) / math.pi
    assert chance_to_clear(difference, 0.3) == pytest.approx(closed_form)
    assert chance_to_clear({**difference, "standard_error": 0.0}, 0.3) == 1.0
    standard = {**cell(), "steps_multiple": 1}
    points = [{**standard, "summary": summarise_point(standard)}, {**cell(), "summary": summarise_point(cell())}]
    (text,) = noise_floor_lines(points)[1:]
    # Only the standard-budget point counts: one point, expected to be cleared with its own chance.
    assert f"layers3 1,000 {closed_form:.2f}." in text
    assert f"clear {closed_form:.1f} of the 1 points, and all of them with probability {closed_form:.3f}." in text
    # A method 0.5 points better clears KD - 0.3 with F_t(0.8 / 0.25; 3); one 1 point better with F_t(1.3 / 0.25; 3).
    better = [0.5 + (math.atan(x / math.sqrt(3)) + (x / math.sqrt(3)) / (1 + x * x / 3)) / math.pi for x in (3.2, 5.2)]
    assert f"probability, by 0.5 pt, {better[0]:.3f}; by 1 pt, {better[1]:.3f}." in text


def test_a_better_method_clears_more_often_and_all_points_at_once_is_the_product_of_their_chances():
    difference = {"mean": 0.0, "standard_error": 0.4, "seeds": 5}
    assert chance_to_clear(difference, 0.3, advantage=0.5) == pytest.approx(chance_to_clear(difference, 0.8))
    assert chance_to_clear(difference, 0.3, advantage=-0.3) == pytest.approx(0.5)
    assert chance_to_clear({**difference, "standard_error": 0.0}, 0.3, advantage=-0.5) == 0.0
    other = {"mean": 0.0, "standard_error": 1.0, "seeds": 8}
    both = chance_to_clear_all([difference, other], 0.3, advantage=1.0)
    assert both == pytest.approx(chance_to_clear(difference, 1.3) * chance_to_clear(other, 1.3))
    assert both < chance_to_clear(difference, 1.3)


def test_points_pool_as_the_mean_of_their_means_with_their_variances_added():
    # Two points of 4 seeds each with the same standard error s: SE = sqrt(2) s / 2 and, by Welch-Satterthwaite,
    # (2 s^2)^2 / (2 s^4 / 3) = 6 degrees of freedom (the t quantile of 7 seeds).
    first = {"mean": 1.0, "standard_error": 0.4, "seeds": 4}
    second = {"mean": -0.2, "standard_error": 0.4, "seeds": 4}
    pooled = pooled_difference([first, second])
    half = T_QUANTILE[7] * math.sqrt(2) * 0.4 / 2
    assert pooled["degrees_of_freedom"] == pytest.approx(6.0)
    assert (pooled["mean"], pooled["low"], pooled["high"]) == pytest.approx((0.4, 0.4 - half, 0.4 + half))
    assert pooled["points"] == 2
    assert pooled_difference([]) is None


def test_pooling_keeps_the_budgets_apart_and_skips_points_without_the_comparison():
    standard = {**cell(), "steps_multiple": 1}
    without_kd = {**standard, "runs": [run for run in standard["runs"] if run["method"] != "kd"]}
    points = [{**point, "summary": summarise_point(point)} for point in (standard, without_kd, cell())]
    pooled = pooled_differences(points)
    alone = paired_difference(SCORES["wcord+kd"], SCORES["kd"])
    assert pooled["standard budget"]["wcord+kd - kd"]["points"] == 1
    assert pooled["standard budget"]["wcord+kd - kd"]["mean"] == pytest.approx(alone["mean"])
    assert pooled["standard budget"]["wcord+kd - crd+kd"]["points"] == 2
    assert pooled["longer budget"]["wcord+kd - kd"]["points"] == 1
    assert pooled["standard budget"]["kd - ce"] is None


def test_a_point_whose_runs_learned_from_two_teachers_is_named():
    point = cell()
    for run in point["runs"]:
        run["teacher_fingerprint"] = "b" * 64 if run["method"] == "wcord+kd, heavier" else "a" * 64
    point["summary"] = summarise_point(point)
    (text,) = mixed_teacher_lines([point])[1:]
    assert f"layers3, 4x steps 1,000: {'a' * 12}: 12 runs, seeds 0, 1, 2, 3; {'b' * 12}: 3 runs, seeds 0, 1, 2" in text
    single = cell()
    for run in single["runs"]:
        run["teacher_fingerprint"] = "a" * 64
    assert mixed_teacher_lines([{**single, "summary": summarise_point(single)}]) == []


def test_runs_that_predate_the_teacher_record_are_named_beside_recorded_ones_with_the_files_earlier_teacher():
    point = cell()
    for run in point["runs"]:
        if run["seed"] == 3:
            run["teacher_fingerprint"] = "a" * 64
    point["earlier_teachers"] = [{"eval": 0.85, "fingerprint": "c" * 64}]
    point["summary"] = summarise_point(point)
    (text,) = mixed_teacher_lines([point])[1:]
    assert f"not recorded: 12 runs, seeds 0, 1, 2; {'a' * 12}: 3 runs, seeds 3 (the file's earlier teachers: " in text
    assert f"(the file's earlier teachers: {'c' * 12} (0.8500))" in text
    unrecorded = cell()
    assert mixed_teacher_lines([{**unrecorded, "summary": summarise_point(unrecorded)}]) == []


def test_seeds_to_clear_every_point_is_the_fewest_that_reach_the_target():
    from scipy import stats

    # Per-seed spreads 0.6 and 1.2 points (SE 0.3 over 4 seeds, 0.6 over 4).
    points = [{"mean": 0.0, "standard_error": 0.3, "seeds": 4}, {"mean": 0.0, "standard_error": 0.6, "seeds": 4}]

    def chance(seeds):
        return math.prod(stats.t.cdf(0.3 * math.sqrt(seeds) / sd, seeds - 1) for sd in (0.6, 1.2))

    needed = seeds_to_clear_all(points, margin=0.3, target=0.8)
    assert chance(needed) >= 0.8 > chance(needed - 1)
    assert needed == 16
    assert seeds_to_clear_all(points[:1], margin=0.3, target=0.8) < needed
    assert seeds_to_clear_all(points, margin=0.3, target=0.8, most=10) is None


def test_an_ablation_run_at_every_standard_budget_point_is_pooled_over_them_and_one_run_at_some_is_not():
    first = {**cell(), "steps_multiple": 1}
    second = {**cell(), "steps_multiple": 1, "train_examples": 4000}
    for run in second["runs"]:
        if run["method"] == "wcord+kd, heavier":
            run["pool"] -= 0.01
    partial = {**cell(), "steps_multiple": 1, "train_examples": 2000}
    partial["runs"] = [run for run in partial["runs"] if run["method"] != "wcord+kd, heavier"]
    longer = cell()
    points = [{**point, "summary": summarise_point(point)} for point in (first, second, longer)]
    pooled = pooled_ablations(points)
    entries = [point["summary"]["ablations"]["wcord+kd, heavier"] for point in points[:2]]
    for key in ("defaults_minus_it", "it_minus_kd", "it_minus_crd+kd"):
        alone = pooled_difference([entry[key] for entry in entries])
        assert pooled["wcord+kd, heavier"][key]["mean"] == pytest.approx(alone["mean"])
        assert pooled["wcord+kd, heavier"][key]["points"] == 2
    # Its minus-KD differences: 4, 1, 4 points at the first point (mean 3), 3, 0, 3 at the second (mean 2).
    assert pooled["wcord+kd, heavier"]["it_minus_kd"]["mean"] == pytest.approx((3.0 + 2.0) / 2)
    (line,) = pooled_ablation_lines(pooled)[3:]
    assert line.startswith("- wcord+kd, heavier: defaults minus it -")
    assert "; it minus kd **+2.50 [+0.54, +4.46]** (2);" in line
    with_partial = [{**point, "summary": summarise_point(point)} for point in (first, second, partial)]
    assert pooled_ablations(with_partial) == {}
    assert pooled_ablation_lines({}) == []
