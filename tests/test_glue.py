"""GLUE task table, data loading from an offline copy and from files, tokenization, and the official metrics."""

from __future__ import annotations

import numpy as np
import pytest

from hf_wcord.tasks import metrics
from hf_wcord.tasks.glue import GLUE_TASKS, GlueDataArguments, load_glue, tokenize_glue

EXPECTED_COLUMNS = {
    "cola": ("sentence",),
    "sst2": ("sentence",),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "stsb": ("sentence1", "sentence2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
}
EXPECTED_METRICS = {
    "cola": {"matthews_correlation"},
    "mrpc": {"accuracy", "f1", "combined_score"},
    "qqp": {"accuracy", "f1", "combined_score"},
    "stsb": {"pearson", "spearmanr", "combined_score"},
}


def test_all_nine_tasks_are_described():
    assert set(GLUE_TASKS) == set(EXPECTED_COLUMNS)
    assert GLUE_TASKS["mnli"].eval_splits == ("validation_matched", "validation_mismatched")
    assert GLUE_TASKS["mnli"].num_labels == 3
    assert GLUE_TASKS["stsb"].is_regression and GLUE_TASKS["stsb"].num_labels == 1


@pytest.mark.parametrize("name", sorted(EXPECTED_COLUMNS))
def test_task_loads_tokenizes_and_scores(name, glue_dir, tokenizer):
    data_args = GlueDataArguments(task_name=name, dataset_dir=str(glue_dir), max_seq_length=32)
    raw, task = load_glue(data_args)
    assert task.text_columns == EXPECTED_COLUMNS[name]
    train, evaluation = tokenize_glue(raw, task, tokenizer, data_args, seed=0)
    assert list(evaluation) == list(task.eval_splits)
    assert train["idx"] == list(range(len(train)))
    assert {"input_ids", "attention_mask", "label"} <= set(train.column_names)
    assert not set(task.text_columns) & set(train.column_names)
    if len(task.text_columns) == 2:
        first = tokenizer.decode(train[0]["input_ids"])
        assert first.count("[SEP]") == 2, "sentence pairs are encoded as one pair, not one text"
    labels = np.asarray(evaluation[task.eval_splits[0]]["label"])
    perfect = labels[:, None] if task.is_regression else np.eye(task.num_labels)[labels.astype(int)]
    scores = task.compute_metrics(perfect, labels)
    assert set(scores) == EXPECTED_METRICS.get(name, {"accuracy"})
    assert all(value == pytest.approx(1.0) for value in scores.values())


def test_user_files_with_string_labels(tmp_path):
    import datasets

    rows = [{"text": f"example {i}", "label": "good" if i % 2 else "bad"} for i in range(10)]
    datasets.Dataset.from_list(rows).to_csv(tmp_path / "train.csv")
    datasets.Dataset.from_list(rows[:4]).to_csv(tmp_path / "dev.csv")
    data_args = GlueDataArguments(train_file=str(tmp_path / "train.csv"), validation_file=str(tmp_path / "dev.csv"))
    raw, task = load_glue(data_args)
    assert task.text_columns == ("text",) and task.label_names == ("bad", "good")


def test_missing_columns_are_named(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"text": "a", "label": 0}] * 4).to_json(tmp_path / "train.jsonl")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['sentence'\]"):
        load_glue(GlueDataArguments(task_name="sst2", train_file=str(tmp_path / "train.jsonl")))


def test_dataset_dir_without_the_split_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"validation_matched"):
        load_glue(GlueDataArguments(task_name="mnli", dataset_dir=str(tmp_path)))


def test_bad_data_arguments():
    with pytest.raises(ValueError, match="Unknown GLUE task"):
        GlueDataArguments(task_name="squad")
    with pytest.raises(ValueError, match="--task_name"):
        GlueDataArguments()
    with pytest.raises(ValueError, match="csv"):
        GlueDataArguments(train_file="data.txt")


def test_metrics_match_hand_checked_values():
    # Predictions vs references: TP 3, TN 2, FP 2, FN 1.
    predictions = np.array([1, 1, 0, 0, 1, 0, 1, 1])
    references = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert metrics.accuracy(predictions, references) == pytest.approx(5 / 8)
    assert metrics.binary_f1(predictions, references) == pytest.approx(6 / 9)  # 2 TP / (2 TP + FP + FN)
    assert metrics.matthews_correlation(predictions, references) == pytest.approx(4 / np.sqrt(5 * 4 * 4 * 3))
    assert metrics.matthews_correlation(np.ones(4), np.array([0, 1, 0, 1])) == 0.0
    assert metrics.binary_f1(np.zeros(4), np.zeros(4)) == 0.0
    # x = 1, 2, 3, 4 and y = 2, 4, 5, 4: centred sums give r = 3.5 / sqrt(5 * 4.75); the ranks of y, 1, 2.5, 4, 2.5,
    # give rho = 3 / sqrt(5 * 4.5).
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 5.0, 4.0])
    assert metrics.pearson_correlation(x, y) == pytest.approx(3.5 / np.sqrt(5 * 4.75))
    assert metrics.spearman_correlation(x, y) == pytest.approx(3 / np.sqrt(5 * 4.5))
    assert metrics.pearson_correlation(x, np.ones(4)) == 0.0
    assert metrics.spearman_correlation(np.ones(4), y) == 0.0
