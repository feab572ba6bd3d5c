"""The model card: Hub metadata through huggingface_hub, no local path anywhere, push_to_hub's arguments kept."""

import os

import pytest
from conftest import tiny_bert
from huggingface_hub import ModelCard
from transformers import DataCollatorWithPadding

from hf_wcord import ModelCardInfo, WCoRDConfig, WCoRDTrainer
from hf_wcord.model_card import is_hub_id, render_model_card


@pytest.fixture
def local_teacher(tmp_path, monkeypatch):
    """A teacher read from a relative local folder (`teachers/sst2`), as a user's run would have it."""
    monkeypatch.chdir(tmp_path)
    teacher = tiny_bert(64, 4, seed=2)
    teacher.save_pretrained("teachers/sst2")
    return type(teacher).from_pretrained("teachers/sst2")


def test_hub_ids_and_local_paths_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "teachers" / "sst2").mkdir(parents=True)
    assert is_hub_id("nyu-mll/glue") and is_hub_id("bert-base-uncased")
    for local in ("teachers/sst2", str(tmp_path / "teachers"), "./model", "~/model", "data/train.csv", "", None):
        assert not is_hub_id(local), local


def test_the_card_parses_with_hub_metadata_and_no_local_path(tmp_path, local_teacher):
    student = tiny_bert(32, 2, seed=1)
    student.config._name_or_path = "google/bert_uncased_L-2_H-128_A-2"
    args = WCoRDConfig(output_dir=str(tmp_path / "out" / "sst2-student"), report_to="none")
    info = ModelCardInfo(dataset="nyu-mll/glue", dataset_config="sst2", license="apache-2.0", tags=["sst2"])
    text = render_model_card(
        student, local_teacher, args, {"eval_accuracy": 0.8761, "eval_loss": 0.4, "eval_runtime": 1.0}, info=info
    )
    path = tmp_path / "README.md"
    path.write_text(text)
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["base_model"] == "google/bert_uncased_L-2_H-128_A-2"
    assert data["datasets"] == ["nyu-mll/glue"]
    assert data["license"] == "apache-2.0" and data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "text-classification"
    assert {"distillation", "wcord", "sst2"} <= set(data["tags"])
    (result,) = card.data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_type, result.dataset_config) == (
        "accuracy",
        0.8761,
        "nyu-mll/glue",
        "sst2",
    )
    assert data["model-index"][0]["name"] == "sst2-student"
    assert data["distillation"] == {"method": "WCoRD"}
    for local in ("teachers/sst2", str(tmp_path), "teachers"):
        assert local not in text
    assert "distilled from BertForSequenceClassification (4 layers" in card.text
    assert "## Framework versions" in card.text and "- transformers " in card.text
    assert "@inproceedings{chen2021wasserstein" in card.text


def test_local_data_and_a_random_init_student_leave_no_metadata_behind(tmp_path, local_teacher):
    args = WCoRDConfig(output_dir=str(tmp_path / "out"), report_to="none")
    student = tiny_bert(32, 2, seed=1)
    student.config._name_or_path = "bert-base-uncased"  # the config it was built from, not its weights
    info = ModelCardInfo(dataset=str(tmp_path / "glue"), dataset_config="sst2", base_model="")
    card = ModelCard(render_model_card(student, local_teacher, args, info=info))
    data = card.data.to_dict()
    assert "base_model" not in data and "datasets" not in data and "model-index" not in data
    assert "on sst2 data" in card.text and str(tmp_path) not in str(card)


def test_push_to_hub_arguments_reach_the_card(tmp_path, tokenizer, sst2_train, local_teacher):
    trainer = WCoRDTrainer(
        model=tiny_bert(32, 2, seed=1),
        teacher_model=local_teacher,
        args=WCoRDConfig(output_dir=str(tmp_path / "run"), max_steps=1, report_to="none", num_negatives=16),
        train_dataset=sst2_train,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    trainer.model_card_info = ModelCardInfo(dataset_config="sst2")
    trainer.create_model_card(
        license="mit",
        tags=["my-tag"],
        language="en",
        finetuned_from="prajjwal1/bert-tiny",
        dataset_tags=["nyu-mll/glue"],
        dataset_args=["sst2"],
        tasks="text-classification",
    )
    card = ModelCard.load(os.path.join(trainer.args.output_dir, "README.md"))
    data = card.data.to_dict()
    assert (data["license"], data["language"], data["base_model"]) == ("mit", "en", "prajjwal1/bert-tiny")
    assert data["datasets"] == ["nyu-mll/glue"] and "my-tag" in data["tags"] and "wcord" in data["tags"]
    assert "| lambda_global | 0.05 |" in card.text
    assert "| critic_warmup_steps | 200 |" in card.text
