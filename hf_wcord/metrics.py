"""GLUE's official metrics (the formulas of the `glue` metric in `evaluate`), computed with numpy so that
evaluation needs no network access."""

from __future__ import annotations

import numpy as np


def accuracy(predictions: np.ndarray, references: np.ndarray) -> float:
    """Fraction of exact matches."""
    return float(np.mean(np.asarray(predictions) == np.asarray(references)))


def binary_f1(predictions: np.ndarray, references: np.ndarray) -> float:
    """F1 of the positive class (label 1): 2 TP / (2 TP + FP + FN); 0 when there is no positive anywhere."""
    predictions, references = np.asarray(predictions), np.asarray(references)
    true_positives = np.sum((predictions == 1) & (references == 1))
    denominator = 2 * true_positives + np.sum(predictions != references)
    return float(2 * true_positives / denominator) if denominator else 0.0


def matthews_correlation(predictions: np.ndarray, references: np.ndarray) -> float:
    """Matthews correlation coefficient of binary labels,
    (TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN)); 0 when a marginal is empty."""
    predictions, references = np.asarray(predictions), np.asarray(references)
    tp = float(np.sum((predictions == 1) & (references == 1)))
    tn = float(np.sum((predictions == 0) & (references == 0)))
    fp = float(np.sum((predictions == 1) & (references == 0)))
    fn = float(np.sum((predictions == 0) & (references == 1)))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator else 0.0


def pearson_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; 0 when either input is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float(np.sum(x * y) / denominator) if denominator else 0.0


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank (as `scipy.stats.rankdata`)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.append(first[1:], len(values)) - 1
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = (first[group] + last[group]) / 2 + 1
    return ranks


def spearman_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the average ranks."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return pearson_correlation(_average_ranks(x), _average_ranks(y))
