"""Evaluating sentence encoders side by side: STS Spearman (cosine of the embeddings against gold similarity) and a
frozen-embedding linear probe (scikit-learn logistic regression), each model reading its own tokenization."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..features import pool_hidden_state


@torch.no_grad()
def encode(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sentences: Sequence[str],
    pooling: str = "mean",
    batch_size: int = 64,
    max_length: int = 128,
) -> np.ndarray:
    """The pooled last hidden states of `sentences` (mean over the attention mask, or the first token), as float32."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    embeddings = []
    for start in range(0, len(sentences), batch_size):
        batch = tokenizer(
            list(sentences[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        states = model(**batch).last_hidden_state
        embeddings.append(pool_hidden_state(states, batch["attention_mask"], pooling).float().cpu())
    model.train(was_training)
    return torch.cat(embeddings).numpy()


def sts_spearman(first: np.ndarray, second: np.ndarray, gold: Sequence[float]) -> float:
    """Spearman correlation between the cosine similarity of each pair's embeddings and its gold score."""
    first = first / np.linalg.norm(first, axis=1, keepdims=True).clip(1e-12)
    second = second / np.linalg.norm(second, axis=1, keepdims=True).clip(1e-12)
    return float(stats.spearmanr((first * second).sum(axis=1), np.asarray(gold)).statistic)


def linear_probe_accuracy(
    train: np.ndarray, train_labels: Sequence[int], test: np.ndarray, test_labels: Sequence[int], seed: int = 0
) -> float:
    """Accuracy of a logistic regression trained on frozen embeddings (standardised with the training set's
    statistics)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(train, np.asarray(train_labels))
    return float(probe.score(test, np.asarray(test_labels)))


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
