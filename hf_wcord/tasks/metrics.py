"""GLUE's official metrics, computed with the libraries the `glue` metric of `evaluate` calls (scikit-learn and
scipy), so that evaluation needs no network access to fetch a metric script."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def accuracy(predictions: np.ndarray, references: np.ndarray) -> float:
    """Fraction of exact matches."""
    return float(accuracy_score(references, predictions))


def binary_f1(predictions: np.ndarray, references: np.ndarray) -> float:
    """F1 of the positive class (label 1): 2 TP / (2 TP + FP + FN); 0 when there is no positive anywhere."""
    return float(f1_score(references, predictions, pos_label=1, average="binary", zero_division=0.0))


def matthews_correlation(predictions: np.ndarray, references: np.ndarray) -> float:
    """Matthews correlation coefficient, (TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN)) for binary
    labels; 0 when a marginal is empty."""
    return float(matthews_corrcoef(references, predictions))


def _correlation(function: object, x: np.ndarray, y: np.ndarray) -> float:
    """A scipy correlation coefficient; 0 where it is undefined (a constant input), as for the MCC."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(function(x, y)[0])


def pearson_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; 0 when either input is constant."""
    return _correlation(pearsonr, x, y)


def spearman_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (Pearson's r of the average ranks); 0 when either input is constant."""
    return _correlation(spearmanr, x, y)
