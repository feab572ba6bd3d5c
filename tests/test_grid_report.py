"""The defaults grid's report: ranks within a cell, the mean rank over cells, the choice, and the second stage's mean
over the selection seeds."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks", "quality"))

from grid_report import KD_CANDIDATE, markdown, ranks, summarise  # noqa: E402

# cell -> seed -> (lambda_global, lambda_local) -> held-out accuracy; (0, 0) is KD alone.
HELD_OUT = {
    "layers3-1000-x4": {
        100: {(0.0, 0.0): 0.80, (0.05, 0.1): 0.81, (0.2, 0.1): 0.83, (0.8, 0.1): 0.82},
        101: {(0.0, 0.0): 0.79, (0.05, 0.1): 0.84, (0.2, 0.1): 0.80, (0.8, 0.1): 0.82},
    },
    "narrow-1000-x4": {
        100: {(0.0, 0.0): 0.70, (0.05, 0.1): 0.72, (0.2, 0.1): 0.71, (0.8, 0.1): 0.69},
        101: {(0.0, 0.0): 0.68, (0.05, 0.1): 0.73, (0.2, 0.1): 0.70, (0.8, 0.1): 0.66},
    },
}


def cells():
    return [
        {
            "cell": name,
            "runs": [
                {
                    "seed": seed,
                    "heldout": score,
                    "settings": {"lambda_global": g, "lambda_local": loc}
                    | ({"student_negatives": "bank"} if g else {}),
                }
                for seed, scores in by_seed.items()
                for (g, loc), score in scores.items()
            ],
        }
        for name, by_seed in HELD_OUT.items()
    ]


def test_ranks_share_ties_and_leave_out_kd():
    scores = {KD_CANDIDATE: 0.9, (0.05, 0.1, "bank"): 0.8, (0.2, 0.1, "bank"): 0.8, (0.4, 0.1, "bank"): 0.7}
    assert ranks(scores) == {(0.05, 0.1, "bank"): 1.5, (0.2, 0.1, "bank"): 1.5, (0.4, 0.1, "bank"): 3.0}


def test_stage_one_ranks_the_first_seed_and_chooses_the_best_mean_rank():
    weights = summarise(cells())["weights"]
    assert weights["seeds"] == [100]
    by_global = {row["lambda_global"]: row for row in weights["rows"]}
    # Seed 100: layers3 ranks 0.2 > 0.8 > 0.05, narrow 0.05 > 0.2 > 0.8.
    assert by_global[0.2]["rank"] == {"layers3-1000-x4": 1.0, "narrow-1000-x4": 2.0}
    assert by_global[0.05]["mean_rank"] == 2.0 and by_global[0.8]["mean_rank"] == 2.5
    assert weights["chosen"]["lambda_global"] == 0.2
    assert by_global[0.2]["minus_kd"]["narrow-1000-x4"] == 100 * (0.71 - 0.70)


def test_stage_two_averages_every_selection_seed_and_names_its_axis():
    summary = summarise(cells())
    negatives = summary["negatives"]
    assert negatives["seeds"] == [100, 101]
    by_global = {row["lambda_global"]: row for row in negatives["rows"]}
    assert by_global[0.05]["heldout"]["layers3-1000-x4"] == (0.81 + 0.84) / 2
    # Mean over both seeds: 0.05 leads both cells.
    assert negatives["chosen"]["lambda_global"] == 0.05
    text = markdown(cells(), summary)
    assert "Stage 2, the weights again: every candidate run at all the selection seeds, mean of seeds 100, 101" in text
    assert "Chosen (best mean rank): lambda_global 0.2, lambda_local 0.1." in text


def test_stage_three_ranks_the_gated_candidates_with_stage_ones_and_leaves_stage_one_as_it_was():
    gated = cells()
    ungated_weights = summarise(gated)["weights"]
    # Seed 100 only: a gated 0.2 that beats every ungated candidate on layers3 and ties the best on narrow.
    for cell, score in zip(gated, (0.85, 0.72), strict=True):
        settings = {"lambda_global": 0.2, "lambda_local": 0.1, "student_negatives": "bank", "critic_gate": True}
        cell["runs"].append({"seed": 100, "heldout": score, "settings": settings})
    summary = summarise(gated)
    assert summary["weights"] == ungated_weights
    gate = summary["gate"]
    by_key = {(row["lambda_global"], row["critic_gate"]): row for row in gate["rows"]}
    assert by_key[(0.2, True)]["rank"] == {"layers3-1000-x4": 1.0, "narrow-1000-x4": 1.5}
    assert gate["chosen"]["critic_gate"] is True
    assert summary["negatives"]["rows"] and not any(row["critic_gate"] for row in summary["negatives"]["rows"])
    text = markdown(gated, summary)
    assert "| 0.2 | 0.1 | on | 0.8500 (1) | 0.7200 (1.5) |" in text
    assert "Chosen (best mean rank): lambda_global 0.2, lambda_local 0.1, critic gate on." in text
    assert summarise(cells())["gate"] is None
