"""Label-free distillation of sentence encoders: MSE, cosine, DistilCSE, WCoRD global, WCoRD global + local and
MSE + WCoRD, side by side under one budget, on unlabeled sentences.

- `mpnet-minilm3`: all-mpnet-base-v2 (its own tokenizer) into the 3-layer MiniLM student (layers 1, 3 and 5 of
  all-MiniLM-L6-v2, pretrained, not fine-tuned);
- `minilm-narrow`: all-MiniLM-L6-v2 into the random-init narrow student (BERT, hidden 256, 4 layers, MiniLM's
  vocabulary).

Training text: 20,000 distinct sentences drawn at random (seed 0) from the training splits of SST-2 and RTE (each RTE
pair gives two sentences), none of which is an STS-B validation sentence or an SST-2 validation sentence. Every run:
the same steps, batch, learning rate and schedule, no per-method tuning (each method at its defaults); paired seeds
(the same data order and, for the random-init student, the same initialisation). Reported: Spearman of the cosine
on the 1,500 STS-B validation pairs, and the accuracy on SST-2's 872 validation sentences of a logistic regression
trained on 2,000 SST-2 training sentences' frozen embeddings; the teacher and the untrained student as reference
rows. A method with a baseline term (mse, cosine, distilcse) is scored as sentence-transformers would deploy it with
the learned map to the teacher's width (`--add_dense_to_teacher_width`; its raw embeddings are recorded too), the
WCoRD-only methods on the student's own embeddings. The teacher's outputs come from a cache built once per cell
(sentences ordered by length, so that batches hold little padding).

    python benchmarks/quality/run_embedding.py --cells mpnet-minilm3 --threads 1
    python benchmarks/quality/run_embedding.py --report_only
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from typing import Any

from cell_recorder import CellRecorder
from cells import DEFAULT_MPNET_DIR, minilm_folder, mpnet_folder
from embedding_report import write_embedding_report
from run_quality import add_run_arguments, environment

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = {
    "mse": "mse",
    "cosine": "cosine",
    "distilcse": "distilcse",
    "wcord global": "global",
    "wcord global+local": "global+local",
    "mse+wcord": "mse+global+local",
}
# cell -> (teacher, student, learning rate)
CELLS = {
    "mpnet-minilm3": ("mpnet", "minilm3", 1e-4),
    "minilm-narrow": ("minilm", "narrow", 5e-4),
}
TRAIN_SENTENCES = 20000
STEPS = 400
BATCH_SIZE = 32
PROBE_TRAIN = 2000
MAX_LENGTH = 64


def sentence_data(data_dir: str) -> tuple[list[str], Any]:
    """The training sentences and the evaluation data (STS-B validation pairs, the SST-2 probe)."""
    from hf_wcord.tasks.sentences import (
        SentenceDataArguments,
        distinct_training_sentences,
        load_evaluation_data,
        load_training_sentences,
    )

    args = SentenceDataArguments(
        glue_dir=os.path.join(data_dir, "glue"), glue_tasks="sst2,rte", probe_train_samples=PROBE_TRAIN
    )
    evaluation = load_evaluation_data(args)
    sentences = distinct_training_sentences(
        load_training_sentences(args), evaluation.held_out_sentences, seed=0, limit=TRAIN_SENTENCES
    )
    return sentences, evaluation


def load_models(cell: str, mpnet_dir: str, seed: int) -> tuple[Any, Any, Any, Any]:
    """Teacher, student (seeded init for the random one) and their tokenizers."""
    import torch
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    from hf_wcord import init_student_from_teacher

    teacher_name, student_name, _ = CELLS[cell]
    teacher_path = mpnet_folder(mpnet_dir) if teacher_name == "mpnet" else minilm_folder()
    teacher = AutoModel.from_pretrained(teacher_path).requires_grad_(False).eval()
    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    torch.manual_seed(seed)
    if student_name == "minilm3":
        student = init_student_from_teacher(AutoModel.from_pretrained(minilm_folder()), [1, 3, 5])
    else:
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=1024,
        )
        student = BertModel(config)
    return teacher, teacher_tokenizer, student, tokenizer


def training_rows(sentences: list[str], tokenizer: Any, teacher_tokenizer: Any) -> tuple[Any, bool]:
    """Tokenized sentences, ordered by length (the teacher cache's batches then hold little padding), with the
    index column; the teacher's own tokenization when its vocabulary differs."""
    from hf_wcord.tasks.sentences import tokenize_sentences

    separate = tokenizer.get_vocab() != teacher_tokenizer.get_vocab()
    ordered = sorted(sentences, key=lambda sentence: (len(sentence), sentence))
    return tokenize_sentences(ordered, tokenizer, teacher_tokenizer if separate else None, MAX_LENGTH), separate


def scores(model: Any, tokenizer: Any, evaluation: Any, pooling: str, project: Any = None) -> dict[str, float]:
    """STS-B Spearman and probe accuracy of the model's embeddings; with `project` (a baseline's learned map to the
    teacher's width, which `--add_dense_to_teacher_width` saves with the student) those of the mapped embeddings,
    the raw ones then under `raw_*`."""
    import torch

    from hf_wcord.tasks.embedding_eval import encode, linear_probe_accuracy, sts_spearman

    texts = (evaluation.sts_first, evaluation.sts_second, evaluation.probe_train, evaluation.probe_test)
    raw = [encode(model, tokenizer, sentences, pooling) for sentences in texts]

    def metrics(first: Any, second: Any, train: Any, test: Any) -> dict[str, float]:
        return {
            "sts_spearman": sts_spearman(first, second, evaluation.sts_gold),
            "probe_accuracy": linear_probe_accuracy(
                train, evaluation.probe_train_labels, test, evaluation.probe_test_labels
            ),
        }

    if project is None:
        return metrics(*raw)
    with torch.no_grad():
        mapped = [project.cpu()(torch.from_numpy(array)).numpy() for array in raw]
    return {**metrics(*mapped), **{f"raw_{name}": value for name, value in metrics(*raw).items()}}


def train_run(
    cell: str, objective: str, seed: int, rows: Any, separate: bool, evaluation: Any, cache: str, mpnet_dir: str
) -> dict[str, Any]:
    import torch
    from transformers import DataCollatorWithPadding

    from hf_wcord import DistillationDataCollator, EmbeddingDistillationConfig, EmbeddingDistillationTrainer

    teacher, teacher_tokenizer, student, tokenizer = load_models(cell, mpnet_dir, seed)
    args = EmbeddingDistillationConfig(
        output_dir=tempfile.mkdtemp(prefix="embedding_"),
        objective=objective,
        max_steps=STEPS,
        per_device_train_batch_size=BATCH_SIZE,
        per_device_eval_batch_size=256,
        learning_rate=CELLS[cell][2],
        warmup_steps=0.1,
        teacher_cache=cache,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
        full_determinism=True,
    )
    collator = (
        DistillationDataCollator(tokenizer, teacher_tokenizer) if separate else DataCollatorWithPadding(tokenizer)
    )
    trainer = EmbeddingDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=rows,
        processing_class=tokenizer,
        teacher_processing_class=teacher_tokenizer if separate else None,
        data_collator=collator,
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    objectives = trainer.distiller.embedding_objectives
    project = objectives.to_teacher if isinstance(objectives.to_teacher, torch.nn.Linear) else None
    return {
        **scores(trainer.model, tokenizer, evaluation, trainer.sentence_pipeline.pooling, project),
        "train_seconds": seconds,
        "optimizer_steps": trainer.state.global_step,
        "settings": {"objective": objective},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--mpnet_dir", default=DEFAULT_MPNET_DIR)
    add_run_arguments(parser, os.path.join(HERE, "results_embedding"), teachers=False)
    cli = parser.parse_args()
    os.makedirs(os.path.join(cli.output_dir, "cells"), exist_ok=True)
    if cli.report_only:
        print(write_embedding_report(cli.output_dir))
        return
    import torch
    from transformers.utils import logging as hf_logging

    if cli.threads:
        torch.set_num_threads(cli.threads)
    hf_logging.set_verbosity_error()
    sentences, evaluation = sentence_data(cli.data_dir)
    cache_root = cli.cache_dir or tempfile.mkdtemp(prefix="embedding_cache_")
    for cell in cli.cells:
        started = time.perf_counter()
        teacher, teacher_tokenizer, student, tokenizer = load_models(cell, cli.mpnet_dir, 0)
        rows, separate = training_rows(sentences, tokenizer, teacher_tokenizer)
        path = os.path.join(cli.output_dir, "cells", f"{cell}.json")
        header: dict[str, Any] = {
            "suite": "embedding",
            "cell": cell,
            "teacher": CELLS[cell][0],
            "student": CELLS[cell][1],
            "training_sentences": len(sentences),
            "budget": {"steps": STEPS, "batch_size": BATCH_SIZE, "learning_rate": CELLS[cell][2]},
            "environment": environment(),
            "arguments": sys.argv[1:],
        }
        recorder = CellRecorder(path, header, resume=True)
        for name, model, model_tokenizer in (
            ("teacher", teacher, teacher_tokenizer),
            ("untrained", student, tokenizer),
        ):
            record = recorder.run(
                {"method": name, "phase": "reference", "seed": 0, "settings": {"model": name}},
                lambda model=model, model_tokenizer=model_tokenizer: {
                    **scores(model, model_tokenizer, evaluation, "mean"),
                    "train_seconds": 0.0,
                },
            )
            print(f"{cell} {name}: STS {record['sts_spearman']:.4f}, probe {record['probe_accuracy']:.4f}", flush=True)
        cache = os.path.join(cache_root, cell)
        for seed in cli.seeds:
            for method in cli.methods:
                objective = METHODS[method]
                train = functools.partial(
                    train_run, cell, objective, seed, rows, separate, evaluation, cache, cli.mpnet_dir
                )
                key = {"method": method, "phase": "final", "seed": seed, "settings": {"objective": objective}}
                record = recorder.run(key, train)
                print(
                    f"{cell} {method} seed {seed}: STS {record['sts_spearman']:.4f}, probe "
                    f"{record['probe_accuracy']:.4f} ({record['train_seconds']:.0f} s)",
                    flush=True,
                )
        recorder.save(minutes=(time.perf_counter() - started) / 60)
    print(write_embedding_report(cli.output_dir))


if __name__ == "__main__":
    main()
