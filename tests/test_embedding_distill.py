"""Label-free distillation of sentence encoders: the baseline losses against their formulas, and
examples/run_embedding_distill.py end to end on the committed fixtures (real SST-2, RTE and STS-B rows) with tiny
random-init BERT encoders, the student loaded back with sentence-transformers itself and with AutoModel."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import FIXTURES_DIR, tiny_bert
from examples_loader import load_example

from hf_wcord import EmbeddingDistillationConfig
from hf_wcord.losses.embedding import TeacherQueueInfoNCE, cosine_embedding_loss, mse_embedding_loss
from hf_wcord.sentence_transformers_io import SentencePipeline, read_sentence_pipeline, save_sentence_transformer
from hf_wcord.tasks.embedding_eval import encode

sentence_transformers = pytest.importorskip("sentence_transformers")


def test_mse_and_cosine_follow_their_formulas():
    torch.manual_seed(0)
    mapped, teacher = torch.randn(5, 8), torch.randn(5, 8)
    expected_mse = sum(((mapped[i] - teacher[i]) ** 2).sum().item() for i in range(5)) / (5 * 8)
    assert math.isclose(mse_embedding_loss(mapped, teacher).item(), expected_mse, rel_tol=1e-5)
    cosines = [
        (mapped[i] @ teacher[i] / (mapped[i].norm() * teacher[i].norm())).item() for i in range(5)
    ]  # fmt: skip
    assert math.isclose(cosine_embedding_loss(mapped, teacher).item(), sum(1 - c for c in cosines) / 5, rel_tol=1e-5)


def test_distilcse_picks_the_own_teacher_embedding_among_the_batch_and_the_queue():
    torch.manual_seed(0)
    loss = TeacherQueueInfoNCE(teacher_dim=6, size=4, temperature=0.1)
    first = torch.randn(3, 6)
    loss(torch.randn(3, 6), first)  # fills the queue with 3 teacher embeddings
    assert int(loss.filled) == 3
    student, teacher = torch.randn(2, 6), torch.randn(2, 6)
    value = loss.eval()(student, teacher)
    u = torch.nn.functional.normalize(student, dim=-1)
    candidates = torch.nn.functional.normalize(torch.cat([teacher, first]), dim=-1)
    expected = 0.0
    for i in range(2):
        scores = [math.exp((u[i] @ c).item() / 0.1) for c in candidates]
        expected -= math.log(scores[i] / sum(scores)) / 2
    assert math.isclose(value.item(), expected, rel_tol=1e-4)
    assert int(loss.filled) == 3, "evaluation calls leave the queue alone"
    loss.train()(student, teacher)
    assert int(loss.filled) == 4 and torch.allclose(loss.queue[3], torch.nn.functional.normalize(teacher[0], dim=-1))


def test_objective_names_and_the_absent_head_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown terms \\['kd'\\]"):
        EmbeddingDistillationConfig(output_dir=str(tmp_path), objective="mse+kd")
    with pytest.raises(ValueError, match="no labels and no logits"):
        EmbeddingDistillationConfig(output_dir=str(tmp_path), alpha_kd=1.0)
    config = EmbeddingDistillationConfig(output_dir=str(tmp_path), objective="mse+global")
    assert (config.lambda_global, config.lambda_local, config.embedding_terms) == (1.0, 0.0, ["mse"])


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory, tokenizer):
    """A tiny 4-layer encoder saved as a sentence-transformers model (mean pooling, normalised), as
    all-mpnet-base-v2 is."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("st_teacher")
    BertModel(tiny_bert(64, 4, seed=2).config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_sentence_transformer(str(folder), SentencePipeline("mean", normalize=True), max_seq_length=64)
    return folder


def run_args(teacher, output_dir, *extra):
    return [
        "--teacher_name_or_path", str(teacher),
        "--glue_dir", str(FIXTURES_DIR / "glue"),
        "--glue_tasks", "sst2,rte",
        "--probe_train_samples", "200",
        "--output_dir", str(output_dir),
        "--do_train",
        "--max_steps", "4",
        "--per_device_train_batch_size", "16",
        "--logging_steps", "2",
        "--num_negatives", "64",
        "--save_strategy", "no",
        "--report_to", "none",
        *extra,
    ]  # fmt: skip


def test_a_student_from_teacher_layers_loads_with_sentence_transformers_and_automodel(teacher_folder, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    assert read_sentence_pipeline(str(teacher_folder)) == SentencePipeline("mean", True)
    output_dir = tmp_path / "student"
    results = load_example("run_embedding_distill").main(
        run_args(teacher_folder, output_dir, "--student_layers", "2", "--objective", "mse+global+local")
    )
    summary = results["summary"]
    for side in ("teacher", "student"):
        assert -1 <= summary[side]["eval_sts_spearman"] <= 1 and 0 <= summary[side]["eval_probe_accuracy"] <= 1
    assert summary["speedup"] > 0 and summary["student"]["parameters"] < summary["teacher"]["parameters"]
    state = json.loads((output_dir / "trainer_state.json").read_text())
    logs = [entry for entry in state["log_history"] if "loss" in entry]
    assert all(math.isfinite(entry[f"loss_{term}"]) for entry in logs for term in ("mse", "global", "local"))
    # The same embeddings through sentence-transformers and through AutoModel + the teacher's pooling.
    st_model = sentence_transformers.SentenceTransformer(str(output_dir), device="cpu")
    sentences = ["A man is playing a guitar.", "the movie is a charming, funny ride"]
    through_st = st_model.encode(sentences, convert_to_numpy=True)
    auto = AutoModel.from_pretrained(output_dir)
    pooled = encode(auto, AutoTokenizer.from_pretrained(output_dir), sentences, "mean")
    expected = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(through_st, expected, atol=1e-5)
    assert auto.config.num_hidden_layers == 2
    card = (output_dir / "README.md").read_text()
    assert "pipeline_tag: sentence-similarity" in card and "library_name: sentence-transformers" in card
    assert "sts_spearman" in card and "SentenceTransformer(" in card


def test_a_narrow_student_with_its_own_tokenizer_and_a_dense_layer_to_the_teacher_width(
    teacher_folder, tmp_path, teacher_tokenizer
):
    """A random-init 32-wide student with its own (byte-pair) tokenizer, the teacher's outputs from the cache,
    MSE through the learned map, saved with that map as a Dense layer: the saved model's embeddings are 64-wide."""
    student_config = tmp_path / "student_config"
    tiny_bert(32, 2, vocab_size=len(teacher_tokenizer), seed=3).config.save_pretrained(student_config)
    teacher_tokenizer.save_pretrained(student_config)
    output_dir = tmp_path / "student"
    results = load_example("run_embedding_distill").main(
        run_args(
            teacher_folder,
            output_dir,
            "--student_config_name",
            str(student_config),
            "--tokenizer_name",
            str(student_config),
            "--objective",
            "mse+distilcse",
            "--add_dense_to_teacher_width",
            "--teacher_cache",
            str(tmp_path / "cache"),
        )  # fmt: skip
    )
    assert math.isfinite(results["eval_sts_spearman"])
    assert json.loads((tmp_path / "cache" / "teacher_cache.json").read_text())["num_examples"] > 500
    st_model = sentence_transformers.SentenceTransformer(str(output_dir), device="cpu")
    assert st_model.encode(["an unseen sentence"]).shape == (1, 64)
    with pytest.raises(ValueError, match="add_dense_to_teacher_width.*mse, cosine and distilcse"):
        load_example("run_embedding_distill").main(
            run_args(teacher_folder, tmp_path / "again", "--student_config_name", str(student_config),
                     "--tokenizer_name", str(student_config), "--objective", "global", "--add_dense_to_teacher_width")
        )  # fmt: skip


def test_training_sentences_leave_out_every_evaluation_sentence():
    from hf_wcord.tasks.sentences import (
        SentenceDataArguments,
        distinct_training_sentences,
        load_evaluation_data,
        load_training_sentences,
    )

    args = SentenceDataArguments(glue_dir=str(FIXTURES_DIR / "glue"), glue_tasks="sst2,rte,stsb")
    evaluation = load_evaluation_data(args)
    everything = load_training_sentences(args)
    kept = distinct_training_sentences(everything, evaluation.held_out_sentences, seed=0, limit=None)
    assert len(kept) == len(set(kept)) and not set(kept) & evaluation.held_out_sentences
    assert set(everything) & evaluation.held_out_sentences, "the fixture's STS-B train rows share sentences with dev"


def embedding_trainer(teacher_folder, tokenizer, sentences, output_dir, **settings):
    from transformers import AutoModel, DataCollatorWithPadding

    from hf_wcord import EmbeddingDistillationTrainer

    rows = sentences.map(lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=48), batched=True)
    args = EmbeddingDistillationConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=16,
        learning_rate=1e-3,
        num_negatives=64,
        distilcse_queue_size=40,
        report_to="none",
        disable_tqdm=True,
        seed=0,
        data_seed=0,
        **settings,
    )
    return EmbeddingDistillationTrainer(
        model=tiny_bert(32, 2, seed=1).bert,
        teacher_model=AutoModel.from_pretrained(teacher_folder),
        args=args,
        train_dataset=rows.remove_columns("sentence"),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
    )


def test_resume_restores_the_student_the_map_and_the_queue_exactly(teacher_folder, tokenizer, tmp_path):
    import datasets

    text = datasets.load_dataset("json", data_files=str(FIXTURES_DIR / "glue" / "sst2" / "train.jsonl"), split="train")
    sentences = text.select(range(96)).select_columns(["sentence"]).add_column("idx", list(range(96)))
    settings = {"objective": "mse+distilcse+global+local", "max_steps": 6, "save_strategy": "steps", "save_steps": 3}
    whole = embedding_trainer(teacher_folder, tokenizer, sentences, tmp_path / "whole", **settings)
    whole.train()
    resumed = embedding_trainer(teacher_folder, tokenizer, sentences, tmp_path / "resumed", **settings)
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-3"))
    for name, expected in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], expected, msg=name)
    for name, expected in whole.distiller.embedding_objectives.state_dict().items():
        torch.testing.assert_close(resumed.distiller.embedding_objectives.state_dict()[name], expected, msg=name)
    assert int(whole.distiller.embedding_objectives.distilcse.filled) == 40


def test_two_processes_share_one_queue_and_one_critic(teacher_folder, tmp_path):
    from examples_loader import launch_on_two_cpu_processes

    output_dir = tmp_path / "ddp"
    args = run_args(teacher_folder, output_dir, "--student_layers", "2", "--objective", "distilcse+global+local")
    output = launch_on_two_cpu_processes("run_embedding_distill", args + ["--max_steps", "3"])
    assert "agree across 2 processes" in output
    st_model = sentence_transformers.SentenceTransformer(str(output_dir), device="cpu")
    assert st_model.encode(["two processes"]).shape == (1, 64)


def test_a_hub_teachers_pipeline_is_read_from_its_repository(teacher_folder, monkeypatch):
    """Up to the network boundary: the files a Hub id names are fetched with `hf_hub_download`."""
    import huggingface_hub

    fetched = []

    def download(repo_id, filename, **kwargs):
        fetched.append((repo_id, filename))
        return str(teacher_folder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    pipeline = read_sentence_pipeline("sentence-transformers/all-mpnet-base-v2")
    assert pipeline == SentencePipeline("mean", normalize=True)
    assert fetched[0] == ("sentence-transformers/all-mpnet-base-v2", "modules.json")
    assert ("sentence-transformers/all-mpnet-base-v2", "1_Pooling/config.json") in fetched

    def missing(repo_id, filename, **kwargs):
        raise huggingface_hub.errors.EntryNotFoundError("no modules.json")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", missing)
    assert read_sentence_pipeline("bert-base-uncased") is None
