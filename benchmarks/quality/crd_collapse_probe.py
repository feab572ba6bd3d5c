"""Why the faithful CRD + KD predicts one class on the random-init text student: how alike the students' CRD
embeddings are before the first step, and how far the logged NCE loss is from that of a critic that scores every
pair alike.

RepDistiller's NCE (`hf_wcord.losses.crd.nce_loss`) has, when every score x is equal, its lowest value at x = 1 / N,
where one direction's loss is ln(K + 1) + K ln(1 + 1/K), about ln K + 1 (`chance_nce_loss`; K = N - 1 here): both
directions together 2 (ln K + 1). A run whose logged `loss_global` sits there has a critic that tells
no pair from another. For each text student of the learning curves this probe draws the student and a CRD head
(`Linear` + L2 normalisation, no standardiser) with each seed, embeds the cell's first 256 training sentences with the
last layer's mean-pooled states (the default layer map; no dropout), and gives the mean pairwise cosine of the pooled
features and of the embeddings; then it lists, for every logged `crd+kd` run of the curve cells, its loss
against 2 (ln K + 1) and the share of the reported examples given the majority prediction.

    python benchmarks/quality/crd_collapse_probe.py --threads 1
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

import torch
from cells import DEFAULT_DATA, make_student, minilm_folder, prepare_cell
from run_curves import CURVES
from run_quality import environment

HERE = os.path.dirname(os.path.abspath(__file__))
CURVES_DIR = os.path.join(HERE, "results_curves")
PROBED_SENTENCES = 256


def mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    """Mean cosine similarity over every pair of distinct rows."""
    from hf_wcord.losses.sinkhorn import cosine_cost

    cosines = 1.0 - cosine_cost(vectors, vectors)
    rows = cosines.shape[0]
    return ((cosines.sum() - cosines.diagonal().sum()) / (rows * (rows - 1))).item()


def init_similarity(curve: str, seeds: list[int], data_dir: str, work_dir: str) -> list[dict]:
    from transformers import AutoTokenizer

    from hf_wcord.features import pool_hidden_state
    from hf_wcord.heads import ProjectionHead

    task, student_name, sizes, make_budget = CURVES[curve]
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    cell = prepare_cell(task, make_budget(sizes[0]), data_dir, work_dir, tokenizer)
    rows = cell.splits["train"].select(range(PROBED_SENTENCES)).remove_columns(["label", "idx"])
    batch = cell.collator([rows[i] for i in range(len(rows))])
    results = []
    for seed in seeds:
        student = make_student(task, student_name, cell.teacher, seed).eval()
        with torch.no_grad():
            hidden = student(**batch, output_hidden_states=True).hidden_states[-1]
            pooled = pool_hidden_state(hidden, batch["attention_mask"], "mean")
            torch.manual_seed(seed)
            head = ProjectionHead(pooled.shape[1], 128, "linear", "none", standardize=False)
            embeddings = head(pooled)
        result = {
            "student": student_name,
            "seed": seed,
            "pooled_cosine": mean_pairwise_cosine(pooled),
            "embedding_cosine": mean_pairwise_cosine(embeddings),
        }
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def logged_crd_runs() -> list[dict]:
    """Every `crd+kd` run of the curve cells that logged its last training losses."""
    from hf_wcord.losses.crd import chance_nce_loss

    runs = []
    for path in sorted(glob.glob(os.path.join(CURVES_DIR, "cells", "*.json"))):
        with open(path) as handle:
            cell = json.load(handle)
        num_negatives = min(16384, cell["train_examples"] - 1)
        for run in cell["runs"]:
            log = run.get("training_log") or {}
            if run["method"] != "crd+kd" or "loss_global" not in log:
                continue
            runs.append(
                {
                    "task": cell["task"],
                    "student": cell["student"],
                    "train_examples": cell["train_examples"],
                    "steps_multiple": cell.get("steps_multiple", 1),
                    "seed": run["seed"],
                    "loss_global": log["loss_global"],
                    "collapsed_loss": 2 * chance_nce_loss(num_negatives),
                    "loss_ce": log.get("loss_ce"),
                    "eval_majority_share": run.get("eval_majority_share"),
                }
            )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curves", nargs="+", default=["narrow", "layers3", "minilm3"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument(
        "--work_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "hf_wcord_quality", "default")
    )
    parser.add_argument("--output", default=os.path.join(CURVES_DIR, "crd_collapse.json"))
    parser.add_argument("--threads", type=int, default=None)
    cli = parser.parse_args()
    if cli.threads:
        torch.set_num_threads(cli.threads)
    started = time.perf_counter()
    similarity = [row for curve in cli.curves for row in init_similarity(curve, cli.seeds, cli.data_dir, cli.work_dir)]
    runs = logged_crd_runs()
    for run in runs:
        print(json.dumps(run))
    payload = {
        "init_similarity": similarity,
        "logged_crd_runs": runs,
        "environment": environment(),
        "minutes": (time.perf_counter() - started) / 60,
    }
    with open(cli.output, "w") as handle:
        json.dump(payload, handle, indent=2)


if __name__ == "__main__":
    main()
