"""The learning curves' report: per point, each method's mean accuracy and the paired differences between methods
with their 95% t-interval over seeds; `results.json`, `results.md` and `results.png`."""

from __future__ import annotations

import math
import os
import statistics
from typing import Any

from report_files import load_suite_cells, write_report_files

COLLAPSE_SHARE = 0.95
# The margin below KD that the defaults are held to ("WCoRD + KD >= KD - 0.3 pt" at every point).
KD_MARGIN = 0.3
# True advantages over KD whose chance of clearing that margin at every point the report states (CRD's published
# margin over KD for a same-architecture pair is +0.56 pt; the largest published margins are +2 to +2.8).
ADVANTAGES = (0.5, 1.0)
COMPARISONS = (("wcord+kd", "kd"), ("wcord+kd", "crd+kd"), ("crd+kd", "kd"), ("kd", "ce"))
METHOD_ORDER = ("ce", "kd", "crd+kd", "wcord+kd")
# What an ablation or variant is also compared with, paired: does it beat the baselines the defaults are held to?
ABLATION_BASELINES = ("kd", "crd+kd")
# An ablation's summary keys, in the ablation table's column order.
ABLATION_KEYS = ("defaults_minus_it", *(f"it_minus_{baseline}" for baseline in ABLATION_BASELINES))


def headline_metric(task: str) -> str:
    """SST-2's headline is the 5,000 training-pool sentences (a standard error about 0.6 pt, against 1.2 pt for the
    872 dev sentences); Fashion-MNIST's is the 10,000 test images."""
    return "pool" if task.startswith("sst2") else "eval"


def paired_difference(first: dict[int, float], second: dict[int, float]) -> dict[str, Any] | None:
    """Mean of first - second over the seeds both ran, in points, with its 95% t-interval; None below 2 seeds."""
    from scipy import stats

    seeds = sorted(set(first) & set(second))
    if len(seeds) < 2:
        return None
    differences = [100 * (first[seed] - second[seed]) for seed in seeds]
    mean = statistics.fmean(differences)
    standard_error = statistics.stdev(differences) / math.sqrt(len(seeds))
    half = stats.t.ppf(0.975, len(seeds) - 1) * standard_error
    return {
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "seeds": len(seeds),
        "standard_error": standard_error,
    }


def chance_to_clear(difference: dict[str, Any], margin: float, advantage: float = 0.0) -> float:
    r"""The chance that a method `advantage` points better than the baseline in expectation (0: no better and no
    worse) shows a paired mean of at least -margin points, with the spread of the per-seed differences seen:

        P = F_t((margin + advantage) / SE; n - 1)    (SE: their standard error over the n seeds; F_t: Student's t)

    A point where this is near 1 can see the margin; one near 0.5 cannot."""
    from scipy import stats

    if difference["standard_error"] == 0:
        return 1.0 if margin + advantage >= 0 else 0.0
    return float(stats.t.cdf((margin + advantage) / difference["standard_error"], difference["seeds"] - 1))


def chance_to_clear_all(differences: list[dict[str, Any]], margin: float, advantage: float = 0.0) -> float:
    """The chance of clearing the margin at every point at once, the points being independent: the product of
    their [`chance_to_clear`]."""
    return math.prod(chance_to_clear(difference, margin, advantage) for difference in differences)


def seeds_to_clear_all(
    differences: list[dict[str, Any]], margin: float, target: float = 0.8, most: int = 1_000_000
) -> int | None:
    r"""The fewest seeds n, the same at every point, with which a method equal to the baseline in expectation would
    clear the margin at every point with probability `target`, each point's per-seed spread being the one seen
    (sd_p = SE_p sqrt(n_p)):

        prod_p F_t(margin sqrt(n) / sd_p; n - 1) >= target

    The product grows with n (a larger argument and more degrees of freedom), so a bisection finds it. None if
    `most` seeds do not reach it."""
    spreads = [difference["standard_error"] * math.sqrt(difference["seeds"]) for difference in differences]

    def reaches(seeds: int) -> bool:
        at_seeds = [{"standard_error": sd / math.sqrt(seeds), "seeds": seeds} for sd in spreads]
        return chance_to_clear_all(at_seeds, margin) >= target

    if not reaches(most):
        return None
    low, high = 2, most
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle + 1, high)
    return low


def standard_budget(cell: dict[str, Any]) -> bool:
    """Whether a point runs its curve's own step budget (not a multiple of it)."""
    return cell.get("steps_multiple", 1) == 1


def pooled_difference(differences: list[dict[str, Any]]) -> dict[str, Any] | None:
    r"""The average over points of their paired mean differences, every point weighing the same, with its 95%
    interval; the points are independent cells (their own data and runs), so the variances add:

        D = (1/P) sum_p d_p,    SE = sqrt(sum_p SE_p^2) / P,    D +- t_0.975(nu) SE,
        nu = (sum_p SE_p^2)^2 / sum_p (SE_p^4 / (n_p - 1))    (Welch-Satterthwaite; n_p: point p's seeds)

    It answers what no single point has the seeds to: whether the method gains or loses on the average point. None
    without points."""
    from scipy import stats

    if not differences:
        return None
    variances = [difference["standard_error"] ** 2 for difference in differences]
    points = len(differences)
    mean = statistics.fmean(difference["mean"] for difference in differences)
    standard_error = math.sqrt(sum(variances)) / points
    freedom = sum(variances) ** 2 / sum(
        variance**2 / (difference["seeds"] - 1) for variance, difference in zip(variances, differences, strict=True)
    )
    half = stats.t.ppf(0.975, freedom) * standard_error
    return {
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "points": points,
        "standard_error": standard_error,
        "degrees_of_freedom": freedom,
    }


def pooled_differences(points: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any] | None]]:
    """For the standard-budget points and for the longer-budget ones apart: each comparison's `pooled_difference`
    over the points where both methods ran."""
    budgets = {
        "standard budget": [cell for cell in points if standard_budget(cell)],
        "longer budget": [cell for cell in points if not standard_budget(cell)],
    }
    return {
        budget: {
            f"{a} - {b}": pooled_difference(
                [
                    difference
                    for cell in cells
                    if (difference := cell["summary"]["differences"].get(f"{a} - {b}")) is not None
                ]
            )
            for a, b in COMPARISONS
        }
        for budget, cells in budgets.items()
        if cells
    }


def pooled_lines(pooled: dict[str, dict[str, dict[str, Any] | None]]) -> list[str]:
    """The pooled differences as a table, a row per budget."""
    rows = []
    for budget, comparisons in pooled.items():
        cells = []
        for a, b in COMPARISONS:
            difference = comparisons[f"{a} - {b}"]
            cells.append("-" if difference is None else f"{format_difference(difference)} ({difference['points']})")
        rows.append(f"| {budget} | " + " | ".join(cells) + " |")
    return [
        "",
        "Across the points, each weighing the same: the mean of the points' paired differences, in points with its "
        "95% interval (the points' variances added, Welch-Satterthwaite degrees of freedom; in brackets, how many "
        "points):",
        "",
        "| budget | " + " | ".join(f"{a} - {b}" for a, b in COMPARISONS) + " |",
        "|---|" + "---|" * len(COMPARISONS),
        *rows,
    ]


def collapsed_runs(runs: list[dict[str, Any]]) -> list[str]:
    """The runs whose student predicts one class for (nearly) every reported dev/test example: training collapsed."""
    return sorted(
        f"{run['method']} (seed {run['seed']})" for run in runs if run.get("eval_majority_share", 0.0) > COLLAPSE_SHARE
    )


def curve_name(cell: dict[str, Any]) -> str:
    """The curve a point belongs to: its student, its teacher where that is not the task's default, and its step
    budget where that is a multiple of the task's standard one."""
    name = f"{cell['student']}, MPNet teacher" if cell["task"] == "sst2_mpnet" else cell["student"]
    multiple = cell.get("steps_multiple", 1)
    return f"{name}, {multiple}x steps" if multiple != 1 else name


def load_points(output_dir: str) -> list[dict[str, Any]]:
    points = load_suite_cells(output_dir, "curve")
    return sorted(points, key=lambda cell: (curve_name(cell), cell["train_examples"]))


def ablation_differences(scores: dict[str, dict[int, float]], method: str) -> dict[str, dict[str, Any] | None]:
    """Under `ABLATION_KEYS`: the defaults minus the ablation `method`, then the ablation minus each baseline that
    ran, paired over the seeds both ran."""
    pairs = [("wcord+kd", method), *((method, baseline) for baseline in ABLATION_BASELINES)]
    return {
        key: paired_difference(scores[first], scores[second])
        for key, (first, second) in zip(ABLATION_KEYS, pairs, strict=True)
        if second in scores
    }


def summarise_point(cell: dict[str, Any]) -> dict[str, Any]:
    metric = headline_metric(cell["task"])
    scores: dict[str, dict[int, float]] = {}
    dev: dict[str, dict[int, float]] = {}
    seconds: dict[str, list[float]] = {}
    final = [run for run in cell["runs"] if run["phase"] == "final"]
    for run in final:
        scores.setdefault(run["method"], {})[run["seed"]] = run[metric]
        seconds.setdefault(run["method"], []).append(run["train_seconds"])
        dev.setdefault(run["method"], {})[run["seed"]] = run["eval"]
    methods = [m for m in METHOD_ORDER if m in scores]
    ablations = [method for method in scores if method not in METHOD_ORDER and "wcord+kd" in scores]
    return {
        "ablations": {
            method: {
                "mean": statistics.fmean(scores[method].values()),
                **ablation_differences(scores, method),
            }
            for method in ablations
        },
        "metric": metric,
        "means": {m: statistics.fmean(scores[m].values()) for m in methods},
        "stds": {m: statistics.stdev(scores[m].values()) if len(scores[m]) > 1 else 0.0 for m in methods},
        "dev_means": {m: statistics.fmean(dev[m].values()) for m in methods},
        "seeds": {m: len(scores[m]) for m in methods},
        "differences": {
            f"{a} - {b}": paired_difference(scores[a], scores[b])
            for a, b in COMPARISONS
            if a in scores and b in scores
        },
        "minutes": sum(run["train_seconds"] for run in cell["runs"]) / 60,
        "train_seconds": {m: statistics.fmean(seconds[m]) for m in methods},
        "collapsed": collapsed_runs(final),
        "teachers": teacher_runs(final),
    }


UNRECORDED = "not recorded"


def teacher_runs(runs: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The seeds of the runs under each teacher fingerprint they recorded (the first 12 hex digits, one entry per
    run), and, beside them, those of the runs that predate the per-run record under "not recorded"; CE runs, which
    never read the teacher, left out. Empty where no run recorded its teacher."""
    teachers: dict[str, list[int]] = {}
    for run in runs:
        if run["method"] != "ce":
            name = run["teacher_fingerprint"][:12] if "teacher_fingerprint" in run else UNRECORDED
            teachers.setdefault(name, []).append(run["seed"])
    return {} if list(teachers) == [UNRECORDED] else teachers


def format_difference(difference: dict[str, Any] | None) -> str:
    if difference is None:
        return "-"
    text = f"{difference['mean']:+.2f} [{difference['low']:+.2f}, {difference['high']:+.2f}]"
    return f"**{text}**" if difference["low"] > 0 or difference["high"] < 0 else text


def markdown(
    points: list[dict[str, Any]],
    pooled: dict[str, dict[str, dict[str, Any] | None]],
    ablations_pooled: dict[str, dict[str, dict[str, Any] | None]],
) -> str:
    lines = [
        "Accuracy (mean over seeds) and paired differences in points with their 95% t-interval (bold: the interval "
        "excludes 0). Headline split: Fashion-MNIST's 10,000 test images; for SST-2 the 5,000 held-out training-pool "
        "sentences (dev-set accuracy in brackets).",
        "",
        "| student | examples | seeds | teacher | "
        + " | ".join(METHOD_ORDER)
        + " | "
        + " | ".join(f"{a} - {b}" for a, b in COMPARISONS)
        + " | minutes |",
        "|---|---|---|---|" + "---|" * (len(METHOD_ORDER) + len(COMPARISONS)) + "---|",
    ]
    for cell in points:
        summary = cell["summary"]
        means = []
        for method in METHOD_ORDER:
            if method not in summary["means"]:
                means.append("-")
                continue
            text = f"{summary['means'][method]:.4f}"
            if summary["metric"] != "eval":
                text += f" ({summary['dev_means'][method]:.4f})"
            means.append(text)
        differences = [format_difference(summary["differences"].get(f"{a} - {b}")) for a, b in COMPARISONS]
        seeds = "/".join(str(n) for n in sorted(set(summary["seeds"].values())))
        teacher = cell["teacher"]["eval"]
        lines.append(
            f"| {curve_name(cell)} | {cell['train_examples']:,} | {seeds} | {teacher:.4f} | "
            + " | ".join(means)
            + " | "
            + " | ".join(differences)
            + f" | {summary['minutes']:.1f} |"
        )
    lines += collapse_lines(points)
    lines += mixed_teacher_lines(points)
    lines += pooled_lines(pooled)
    lines += noise_floor_lines(points)
    lines += time_lines(points)
    lines += ablation_lines(points)
    lines += pooled_ablation_lines(ablations_pooled)
    return "\n".join(lines)


def collapse_lines(points: list[dict[str, Any]]) -> list[str]:
    """The points' collapsed runs, which the means and intervals above include."""
    collapsed = [
        f"{curve_name(cell)} {cell['train_examples']:,}: {', '.join(cell['summary']['collapsed'])}"
        for cell in points
        if cell["summary"]["collapsed"]
    ]
    if not collapsed:
        return []
    return [
        "",
        f"Runs that collapsed (one class predicted for over {COLLAPSE_SHARE:.0%} of the dev/test examples; the means "
        "and intervals above include them): " + "; ".join(collapsed) + ".",
    ]


def mixed_teacher_lines(points: list[dict[str, Any]]) -> list[str]:
    """The points whose runs recorded more than one teacher, or whose earlier runs recorded none beside later runs
    that did: their pairs are not all under one teacher, or not known to be."""
    mixed = [
        f"{curve_name(cell)} {cell['train_examples']:,}: "
        + "; ".join(
            f"{fingerprint}: {len(seeds)} runs, seeds {', '.join(str(seed) for seed in sorted(set(seeds)))}"
            for fingerprint, seeds in cell["summary"]["teachers"].items()
        )
        + earlier_teachers_note(cell)
        for cell in points
        if len(cell["summary"]["teachers"]) > 1
    ]
    if not mixed:
        return []
    return [
        "",
        "Points whose runs learned from more than one teacher, or whose earlier runs did not record theirs (by "
        "fingerprint): " + " | ".join(mixed) + ".",
    ]


def earlier_teachers_note(cell: dict[str, Any]) -> str:
    """The teachers the cell's file named before its current one (the teachers of runs that did not record theirs)."""
    earlier = [f"{each['fingerprint'][:12]} ({each['eval']:.4f})" for each in cell.get("earlier_teachers", [])]
    return f" (the file's earlier teachers: {', '.join(earlier)})" if earlier else ""


def noise_floor_lines(points: list[dict[str, Any]], margin: float = KD_MARGIN) -> list[str]:
    """How much of "WCoRD + KD >= KD - margin" the noise decides: for each standard-budget point, the chance that a
    method equal to KD in expectation clears the margin ([`chance_to_clear`], with WCoRD + KD - KD's spread), their
    sum (the points it would be expected to clear), their product (the chance of clearing every one) and the seeds
    per point it would need to clear every one with probability 0.8 ([`seeds_to_clear_all`]); then the chance of
    clearing every one for methods truly `ADVANTAGES` points above KD at every point, with the same spreads."""
    chances, differences = [], []
    for cell in points:
        difference = cell["summary"]["differences"].get("wcord+kd - kd")
        if standard_budget(cell) and difference is not None:
            chances.append((f"{curve_name(cell)} {cell['train_examples']:,}", chance_to_clear(difference, margin)))
            differences.append(difference)
    if not chances:
        return []
    listed = ", ".join(f"{name} {chance:.2f}" for name, chance in chances)
    needed = seeds_to_clear_all(differences, margin)
    better = "; ".join(
        f"by {advantage:g} pt, {chance_to_clear_all(differences, margin, advantage):.3f}" for advantage in ADVANTAGES
    )
    return [
        "",
        f"What the noise decides: were WCoRD + KD exactly KD in expectation, a standard-budget point's paired mean "
        f"would clear KD - {margin:g} with probability F_t({margin:g} / SE; seeds - 1), SE being the standard error "
        f"of that point's WCoRD + KD - KD differences: {listed}. Such a method would be expected to clear "
        f"{sum(chance for _, chance in chances):.1f} of the {len(chances)} points, and all of them with probability "
        f"{chance_to_clear_all(differences, margin):.3f}. To clear all of them with probability 0.8, with each "
        "point's per-seed spread as seen, it would need "
        + (f"{needed:,} seeds at every point." if needed is not None else "more than a million seeds at every point.")
        + " A method truly better than KD at every point, at these seeds, would clear all of them with probability, "
        f"{better}.",
    ]


def time_lines(points: list[dict[str, Any]]) -> list[str]:
    """Each method's mean training seconds per run (`trainer.train()`: for WCoRD and CRD with the memory-bank fill
    and the critic warm-up), and WCoRD + KD's over KD's."""
    rows = []
    for cell in points:
        seconds = cell["summary"]["train_seconds"]
        ratio = f"{seconds['wcord+kd'] / seconds['kd']:.2f}x" if "wcord+kd" in seconds and "kd" in seconds else "-"
        times = " | ".join(f"{seconds[m]:.0f}" if m in seconds else "-" for m in METHOD_ORDER)
        rows.append(f"| {curve_name(cell)} | {cell['train_examples']:,} | {times} | {ratio} |")
    return [
        "",
        "Training seconds per run (mean over its runs; with the memory-bank fill and the critic warm-up; wall-clock "
        "time, rough wherever other jobs shared the machine):",
        "",
        "| student | examples | " + " | ".join(METHOD_ORDER) + " | wcord+kd / kd |",
        "|---|---|" + "---|" * len(METHOD_ORDER) + "---|",
        *rows,
    ]


def pooled_ablations(points: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any] | None]]:
    """For each ablation or variant that ran at every standard-budget point: its `ABLATION_KEYS` differences pooled
    over those points ([`pooled_difference`], each point weighing the same)."""
    standard = [cell for cell in points if standard_budget(cell)]
    everywhere = [
        method
        for method in dict.fromkeys(name for cell in standard for name in cell["summary"]["ablations"])
        if all(method in cell["summary"]["ablations"] for cell in standard)
    ]
    return {
        method: {
            key: pooled_difference(
                [
                    cell["summary"]["ablations"][method][key]
                    for cell in standard
                    if cell["summary"]["ablations"][method].get(key) is not None
                ]
            )
            for key in ABLATION_KEYS
        }
        for method in everywhere
    }


def pooled_ablation_lines(pooled: dict[str, dict[str, dict[str, Any] | None]]) -> list[str]:
    """One line per ablation that ran at every standard-budget point: its differences pooled over them."""
    lines = []
    for method, differences in pooled.items():
        parts = [
            f"{key.replace('_', ' ')} {format_difference(difference)} ({difference['points']})"
            for key, difference in differences.items()
            if difference is not None
        ]
        lines.append(f"- {method}: " + "; ".join(parts) + ".")
    if not lines:
        return []
    return [
        "",
        "Across the standard-budget points, for each ablation run at every one of them (each point weighing the "
        "same, as above; in brackets, how many points):",
        "",
        *lines,
    ]


def ablation_lines(points: list[dict[str, Any]]) -> list[str]:
    """`wcord+kd` (the defaults) minus each ablation or variant, paired, where a point ran them."""
    rows = []
    for cell in points:
        for method, entry in cell["summary"]["ablations"].items():
            differences = [format_difference(entry.get(key)) for key in ABLATION_KEYS]
            rows.append(
                f"| {curve_name(cell)} | {cell['train_examples']:,} | {method} | {entry['mean']:.4f} | "
                + " | ".join(differences)
                + " |"
            )
    if not rows:
        return []
    baselines = " | ".join(f"ablation - {baseline}" for baseline in ABLATION_BASELINES)
    return [
        "",
        "What each change does: the defaults (`wcord+kd`) minus the ablation, paired, in points with the 95% "
        "t-interval (positive: the change helps), and the ablation against the baselines:",
        "",
        f"| student | examples | ablation | its accuracy | defaults - ablation | {baselines} |",
        "|---|---|---|---|---|" + "---|" * len(ABLATION_BASELINES),
        *rows,
    ]


def plot(points: list[dict[str, Any]], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    curves = sorted({curve_name(cell) for cell in points})
    columns = min(3, len(curves))
    rows = -(-len(curves) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4.5 * rows), squeeze=False)
    for axis in axes.flat[len(curves) :]:
        axis.set_visible(False)
    for axis, curve in zip(axes.flat, curves, strict=False):
        cells = [cell for cell in points if curve_name(cell) == curve]
        sizes = [cell["train_examples"] for cell in cells]
        for method in METHOD_ORDER:
            present = [(s, c["summary"]) for s, c in zip(sizes, cells, strict=True) if method in c["summary"]["means"]]
            if present:
                axis.errorbar(
                    [s for s, _ in present],
                    [p["means"][method] for _, p in present],
                    yerr=[p["stds"][method] for _, p in present],
                    marker="o",
                    capsize=3,
                    color=f"C{METHOD_ORDER.index(method)}",
                    label=method,
                )
        axis.axhline(cells[0]["teacher"]["eval"], color="gray", linestyle="--", linewidth=1, label="teacher")
        axis.set_xscale("log")
        axis.minorticks_off()
        axis.set_xticks(sizes, [f"{s:,}" for s in sizes])
        axis.set_xlabel("training examples (same optimizer steps at every size)")
        split = "5,000 held-out SST-2 sentences" if headline_metric(cells[0]["task"]) == "pool" else "test images"
        axis.set_ylabel(f"accuracy ({split})")
        axis.set_title(f"{cells[0]['task']}: {curve}")
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def write_curve_report(output_dir: str) -> str:
    points = load_points(output_dir)
    if not points:
        raise SystemExit(f"No learning-curve cells in {os.path.join(output_dir, 'cells')}: run the curves first.")
    for cell in points:
        cell["summary"] = summarise_point(cell)
    pooled = pooled_differences(points)
    ablations_pooled = pooled_ablations(points)
    text = markdown(points, pooled, ablations_pooled)
    extra = {"across_points": pooled, "ablations_across_points": ablations_pooled}
    return write_report_files(output_dir, "curve", "points", points, text, plot, extra=extra)
