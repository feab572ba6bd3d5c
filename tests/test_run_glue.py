"""End-to-end runs of examples/run_glue_distill.py and examples/run_glue_teacher.py on every GLUE task (tiny
random-init models, a few real rows), the push to the Hub up to the network boundary, and two-process runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import GLUE_FIXTURE_ROWS, tiny_bert
from examples_loader import launch_on_two_cpu_processes, load_example
from huggingface_hub import ModelCard

from hf_wcord.tasks.glue import GLUE_TASKS, task_head_kwargs

MAIN_METRIC = {
    "cola": ["eval_matthews_correlation"],
    "mrpc": ["eval_accuracy", "eval_f1"],
    "qqp": ["eval_accuracy", "eval_f1"],
    "stsb": ["eval_pearson", "eval_spearmanr"],
    "mnli": ["eval_validation_matched_accuracy", "eval_validation_mismatched_accuracy"],
}


@pytest.fixture(scope="module")
def distill_script():
    return load_example("run_glue_distill")


@pytest.fixture(scope="module")
def teacher_script():
    return load_example("run_glue_teacher")


@pytest.fixture(scope="module")
def tiny_teachers(tmp_path_factory, tokenizer):
    """A tiny 4-layer "fine-tuned" teacher folder per label space (2 and 3 classes, regression), with tokenizer."""
    root = tmp_path_factory.mktemp("teachers")
    folders = {}
    for task_name in ("sst2", "mnli", "stsb"):
        task = GLUE_TASKS[task_name]
        model = tiny_bert(32, 4, num_labels=task.num_labels, seed=1)
        model.config.update(task_head_kwargs(task))
        folder = root / f"labels_{task.num_labels}"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[task.num_labels] = str(folder)
    return folders


def common_args(glue_dir: Path, output_dir: Path, task: str) -> list[str]:
    return [
        "--task_name", task,
        "--dataset_dir", str(glue_dir),
        "--output_dir", str(output_dir),
        "--do_train", "--do_eval",
        "--max_steps", "2",
        "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "8",
        "--max_seq_length", "32",
        "--logging_steps", "1",
        "--save_strategy", "no",
        "--seed", "0",
    ]  # fmt: skip


def logged_losses(output_dir: Path) -> list[dict]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry for entry in state["log_history"] if "loss" in entry]


@pytest.mark.parametrize("task_name", sorted(GLUE_TASKS))
def test_distill_every_glue_task(task_name, distill_script, tiny_teachers, glue_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    task = GLUE_TASKS[task_name]
    output_dir = tmp_path / "student"
    args = common_args(glue_dir, output_dir, task_name)
    args += ["--teacher_name_or_path", tiny_teachers[task.num_labels], "--student_layers", "2"]
    results = distill_script.main(args + ["--report_to", "none", "--measure_speedup", "false"])
    for metric in MAIN_METRIC.get(task_name, ["eval_accuracy"]):
        assert math.isfinite(results[metric])
        assert metric in results["summary"]["teacher"], "the teacher is evaluated side by side"
    losses = logged_losses(output_dir)
    expected_terms = {"loss_ce", "loss_kd", "loss_global", "loss_local"}
    assert len(losses) == 2 and all(expected_terms <= set(entry) for entry in losses)
    assert all(math.isfinite(entry[name]) for entry in losses for name in expected_terms)
    student = AutoModelForSequenceClassification.from_pretrained(output_dir)
    assert student.config.num_hidden_layers == 2 and student.config.num_labels == task.num_labels
    assert (student.config.problem_type == "regression") == task.is_regression


def test_teacher_then_regression_distillation(teacher_script, distill_script, glue_dir, tmp_path, tokenizer):
    """STS-B end to end: a pretrained encoder fine-tuned into a regression teacher, then distilled with MSE KD."""
    from transformers import BertModel

    pretrained = tmp_path / "pretrained"
    encoder = BertModel(tiny_bert(32, 4).config)
    encoder.save_pretrained(pretrained)
    tokenizer.save_pretrained(pretrained)
    teacher_dir = tmp_path / "teacher"
    teacher_results = teacher_script.main(
        common_args(glue_dir, teacher_dir, "stsb") + ["--model_name_or_path", str(pretrained), "--report_to", "none"]
    )
    assert math.isfinite(teacher_results["eval_pearson"])
    student_dir = tmp_path / "student"
    args = common_args(glue_dir, student_dir, "stsb") + ["--teacher_name_or_path", str(teacher_dir)]
    results = distill_script.main(args + ["--student_layers", "0,3", "--report_to", "none"])
    assert math.isfinite(results["eval_spearmanr"]) and results["summary"]["speedup"] > 0
    assert all(entry["loss_kd"] >= 0 for entry in logged_losses(student_dir))


def test_config_file_with_flag_overrides(distill_script, tiny_teachers, glue_dir, tmp_path):
    config = {
        "task_name": "rte",
        "dataset_dir": str(glue_dir),
        "teacher_name_or_path": tiny_teachers[2],
        "student_layers": "1",
        "output_dir": str(tmp_path / "from_yaml"),
        "do_train": True,
        "max_steps": 1,
        "lambda_local": 0.5,
        "per_device_train_batch_size": 4,
        "save_strategy": "no",
    }
    path = tmp_path / "distill.yaml"
    path.write_text("\n".join(f"{key}: {json.dumps(value)}" for key, value in config.items()))
    results = distill_script.main([str(path), "--lambda_local", "0.25", "--measure_speedup", "false"])
    args = json.loads((tmp_path / "from_yaml" / "distillation_summary.json").read_text())
    assert "train_runtime" in results and args["student"]["parameters"] > 0
    events = list((tmp_path / "from_yaml").rglob("events.out.tfevents*"))
    assert events, "TensorBoard logs are written by default when tensorboard is installed"
    parsed = distill_script.parse_arguments(
        (distill_script.DistillationModelArguments, distill_script.GlueDataArguments, distill_script.WCoRDConfig),
        [str(path), "--lambda_local", "0.25"],
    )
    assert parsed[2].lambda_local == 0.25 and parsed[2].max_steps == 1 and parsed[1].task_name == "rte"


def test_push_to_hub_sends_the_student_alone(distill_script, tiny_teachers, glue_dir, tmp_path, monkeypatch):
    import shutil
    from concurrent.futures import Future

    import transformers.trainer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    uploaded = tmp_path / "uploaded"
    calls = {}

    class FakeHub:
        def create_repo(self, repo_id, **kwargs):
            calls["repo"] = repo_id
            return type("RepoUrl", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, ignore_patterns=(), **kwargs):
            calls["upload"] = repo_id
            shutil.rmtree(uploaded, ignore_errors=True)
            shutil.copytree(folder_path, uploaded, ignore=shutil.ignore_patterns(*(ignore_patterns or ())))
            done = Future()
            done.set_result(None)
            return done

    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: FakeHub())
    args = common_args(glue_dir, tmp_path / "out", "sst2") + ["--teacher_name_or_path", tiny_teachers[2]]
    args += ["--student_layers", "2", "--push_to_hub", "--hub_model_id", "someone/sst2-student", "--report_to", "none"]
    args += ["--save_strategy", "steps", "--save_steps", "1", "--measure_speedup", "false"]
    distill_script.main(args)

    assert calls == {"repo": "someone/sst2-student", "upload": "someone/sst2-student"}
    student = AutoModelForSequenceClassification.from_pretrained(uploaded)
    assert student.config.num_hidden_layers == 2
    assert len(AutoTokenizer.from_pretrained(uploaded)) == 30522
    names = {path.name for path in uploaded.rglob("*")}
    assert not any(name.startswith("checkpoint-") for name in names), "checkpoints (with heads and bank) stay home"
    assert not any("wcord_distiller" in name for name in names)
    teacher_size = sum(
        p.numel() for p in AutoModelForSequenceClassification.from_pretrained(tiny_teachers[2]).parameters()
    )
    assert sum(p.numel() for p in student.parameters()) < teacher_size
    card = ModelCard.load(uploaded / "README.md")
    for expected in ("# sst2-student", "sst2", "WCoRD", "lambda_global", "| accuracy |"):
        assert expected in card.text
    assert tiny_teachers[2] not in str(card) and str(glue_dir) not in str(card), "local folders stay out of the card"
    assert card.data.eval_results[0].metric_type == "accuracy"
    assert "datasets" not in card.data.to_dict() and "base_model" not in card.data.to_dict()


def test_a_teacher_with_its_own_tokenizer(distill_script, glue_dir, tmp_path, tokenizer, teacher_tokenizer):
    """A teacher with another vocabulary (byte-pair) into a student with MiniLM's WordPiece, 2 of its 3 layers kept:
    each reads its own tokenization; the saved student keeps its own tokenizer; the card names both."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    teacher_dir, student_dir = tmp_path / "bpe_teacher", tmp_path / "wordpiece_student"
    teacher = tiny_bert(64, 4, vocab_size=len(teacher_tokenizer), seed=1)
    teacher.config.update(task_head_kwargs(GLUE_TASKS["sst2"]))
    teacher.save_pretrained(teacher_dir)
    teacher_tokenizer.save_pretrained(teacher_dir)
    tiny_bert(32, 3, seed=3).save_pretrained(student_dir)
    tokenizer.save_pretrained(student_dir)
    output_dir = tmp_path / "out"
    args = common_args(glue_dir, output_dir, "sst2") + ["--teacher_name_or_path", str(teacher_dir)]
    args += ["--student_name_or_path", str(student_dir), "--student_layers", "0,2", "--do_predict"]
    results = distill_script.main(args + ["--report_to", "none", "--teacher_cache", str(tmp_path / "cache")])
    assert math.isfinite(results["eval_accuracy"]) and math.isfinite(results["summary"]["teacher"]["eval_accuracy"])
    assert results["summary"]["speedup"] > 0 and len(results["predictions"]) == 1
    losses = logged_losses(output_dir)
    assert all(math.isfinite(entry[name]) for entry in losses for name in ("loss_kd", "loss_global", "loss_local"))
    student = AutoModelForSequenceClassification.from_pretrained(output_dir)
    assert student.config.num_hidden_layers == 2 and student.config.vocab_size == 30522
    assert AutoTokenizer.from_pretrained(output_dir).get_vocab() == tokenizer.get_vocab()
    card = (output_dir / "README.md").read_text()
    assert "Each model read its own tokenization of the same text" in card
    assert f"{len(teacher_tokenizer):,} tokens; the student " in card and "30,522 tokens, saved with it" in card


def test_teacher_without_a_trained_head_is_refused(distill_script, glue_dir, tmp_path, tokenizer):
    from transformers import BertModel

    encoder_dir = tmp_path / "encoder"
    BertModel(tiny_bert(32, 2).config).save_pretrained(encoder_dir)
    tokenizer.save_pretrained(encoder_dir)
    args = common_args(glue_dir, tmp_path / "out", "sst2") + ["--teacher_name_or_path", str(encoder_dir)]
    with pytest.raises(ValueError, match="run_glue_teacher.py"):
        distill_script.main(args + ["--student_layers", "1"])


def test_teacher_folder_without_a_tokenizer_is_refused_naming_the_flag(
    distill_script, glue_dir, tmp_path, tokenizer, tiny_teachers
):
    """transformers builds a tokenizer of special tokens alone, without an error, from a model folder with no
    tokenizer files; distilling with it would feed the teacher unknown tokens only."""
    weights_only = tmp_path / "weights_only"
    tiny_bert(32, 2, num_labels=2).save_pretrained(weights_only)
    args = common_args(glue_dir, tmp_path / "out", "sst2") + ["--teacher_name_or_path", str(weights_only)]
    with pytest.raises(ValueError, match="holds no tokenizer.*--teacher_tokenizer_name"):
        distill_script.main(args + ["--student_layers", "1"])
    results = distill_script.main(
        args + ["--student_layers", "1", "--teacher_tokenizer_name", tiny_teachers[2], "--measure_speedup", "false"]
    )
    assert math.isfinite(results["eval_accuracy"])


def test_teacher_for_another_label_space_is_refused(distill_script, tiny_teachers, glue_dir, tmp_path):
    args = common_args(glue_dir, tmp_path / "out", "mnli") + ["--teacher_name_or_path", tiny_teachers[2]]
    with pytest.raises(ValueError, match="predicts 2 labels but mnli has 3"):
        distill_script.main(args + ["--student_layers", "1"])


def test_exactly_one_student_source(distill_script, tiny_teachers, glue_dir, tmp_path):
    args = common_args(glue_dir, tmp_path / "out", "sst2") + ["--teacher_name_or_path", tiny_teachers[2]]
    with pytest.raises(ValueError, match="exactly one of"):
        distill_script.main(args)
    with pytest.raises(ValueError, match="exactly one of"):
        distill_script.main(args + ["--student_config_name", tiny_teachers[2], "--student_layers", "1"])


def test_two_processes_keep_identical_banks(tiny_teachers, glue_dir, tmp_path):
    """`accelerate launch` with two CPU processes (gloo): banks gathered, Sinkhorn over the global batch, heads
    averaged; every rank ends with the same heads and banks, finite losses, and a saved student."""
    output_dir = tmp_path / "ddp"
    args = common_args(glue_dir, output_dir, "rte") + ["--teacher_name_or_path", tiny_teachers[2]]
    args += ["--student_layers", "2", "--local_over_global_batch", "--max_steps", "3"]
    args += ["--per_device_train_batch_size", "4", "--report_to", "none", "--measure_speedup", "false"]
    output = launch_on_two_cpu_processes("run_glue_distill", args)
    assert "agree across 2 processes" in output
    losses = logged_losses(output_dir)
    assert len(losses) == 3 and all(math.isfinite(entry["loss_local"]) for entry in losses)
    assert losses[-1]["epoch"] == pytest.approx(3 * 4 * 2 / 24), "each step consumed two processes' batches"
    assert (output_dir / "model.safetensors").is_file()


SHARDED_CONFIGS = {
    "fsdp": ("--fsdp_config", {"version": 2, "transformer_layer_cls_to_wrap": ["BertLayer"]}),
    # A DeepSpeed config as users write them, with the student's optimizer and schedule in it.
    "zero3": (
        "--deepspeed",
        {
            "zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True},
            "optimizer": {"type": "AdamW", "params": {"lr": "auto", "weight_decay": "auto"}},
            "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": "auto", "warmup_num_steps": "auto"}},
            "train_micro_batch_size_per_gpu": "auto",
            "train_batch_size": "auto",
            "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto",
        },
    ),
}


@pytest.mark.parametrize("sharding", ["fsdp", "zero3"])
def test_sharded_runs_train_checkpoint_resume_and_evaluate_the_teacher(sharding, tiny_teachers, glue_dir, tmp_path):
    """The example on two CPU processes under FSDP 2 or DeepSpeed ZeRO-3: training, checkpoints with the heads'
    own optimizer, the saved student, the teacher evaluated side by side, and a resumed run that ends where the
    uninterrupted one did."""
    if sharding == "zero3":
        pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install -e '.[dev]' installs it)")
    flag, config = SHARDED_CONFIGS[sharding]
    config_file = tmp_path / f"{sharding}.json"
    config_file.write_text(json.dumps(config))
    output_dir = tmp_path / "student"
    args = common_args(glue_dir, output_dir, "sst2") + ["--teacher_name_or_path", tiny_teachers[2]]
    args += ["--student_layers", "2", "--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2"]
    args += ["--per_device_train_batch_size", "4", "--report_to", "none", "--measure_speedup", "false"]
    args += [flag, str(config_file), *(["--fsdp", "full_shard"] if sharding == "fsdp" else [])]
    output = launch_on_two_cpu_processes("run_glue_distill", args, sharding)
    if sharding == "zero3":
        # The teacher was loaded partitioned, so the student made from its layers was copied from gathered ones.
        assert "activating zero.init() for this model" in output
    finished = json.loads((output_dir / "all_results.json").read_text())
    summary = json.loads((output_dir / "distillation_summary.json").read_text())
    assert math.isfinite(summary["teacher"]["eval_accuracy"]) and summary["teacher"]["parameters"] > 0
    checkpoint = output_dir / "checkpoint-2"
    assert (checkpoint / "wcord_distiller.safetensors").is_file()
    assert (checkpoint / "wcord_head_optimizer.pt").is_file(), "the heads' own optimizer and schedule"
    assert (output_dir / "model.safetensors").is_file()
    launch_on_two_cpu_processes("run_glue_distill", [*args, "--resume_from_checkpoint", str(checkpoint)], sharding)
    resumed = json.loads((output_dir / "all_results.json").read_text())
    assert resumed["eval_loss"] == pytest.approx(finished["eval_loss"], rel=1e-6, abs=0)
    assert resumed["eval_accuracy"] == finished["eval_accuracy"]


@pytest.mark.parametrize("task_name", ["sst2", "mnli", "stsb"])
def test_do_predict_writes_glue_submission_files(task_name, distill_script, tiny_teachers, glue_dir, tmp_path):
    task = GLUE_TASKS[task_name]
    output_dir = tmp_path / "student"
    args = common_args(glue_dir, output_dir, task_name) + ["--teacher_name_or_path", tiny_teachers[task.num_labels]]
    args += ["--student_layers", "1", "--do_predict", "--max_predict_samples", "5", "--measure_speedup", "false"]
    results = distill_script.main(args + ["--report_to", "none"])
    expected = ["predict_results_mnli.txt", "predict_results_mnli-mm.txt"] if task_name == "mnli" else None
    assert [Path(path).name for path in results["predictions"]] == (expected or [f"predict_results_{task_name}.txt"])
    for path in results["predictions"]:
        header, *rows = Path(path).read_text().splitlines()
        assert header == "index\tprediction" and len(rows) == 5
        indices, predictions = zip(*(row.split("\t") for row in rows), strict=True)
        assert indices == ("1000", "1001", "1002", "1003", "1004"), "rows keep the test split's idx"
        if task.is_regression:
            assert all(len(value.split(".")[1]) == 3 and math.isfinite(float(value)) for value in predictions)
        else:
            assert set(predictions) <= set(task.label_names)


def test_do_predict_reads_a_test_file_and_refuses_to_predict_nothing(teacher_script, glue_dir, tmp_path, tokenizer):
    from transformers import BertModel

    pretrained = tmp_path / "pretrained"
    BertModel(tiny_bert(32, 2).config).save_pretrained(pretrained)
    tokenizer.save_pretrained(pretrained)
    files = ["--train_file", str(glue_dir / "rte" / "train.jsonl"), "--model_name_or_path", str(pretrained)]
    args = [*files, "--output_dir", str(tmp_path / "out"), "--do_predict", "--max_seq_length", "32"]
    with pytest.raises(ValueError, match="--do_predict found no test split"):
        teacher_script.main([*args, "--report_to", "none"])
    teacher_script.main([*args, "--test_file", str(glue_dir / "rte" / "test.jsonl"), "--report_to", "none"])
    header, *rows = (tmp_path / "out" / "predict_results_custom.txt").read_text().splitlines()
    assert header == "index\tprediction" and len(rows) == 12
    assert {row.split("\t")[1] for row in rows} <= {"0", "1"}, "file labels name the classes by their values"


def test_a_pretrained_student_with_another_head_size_needs_ignore_mismatched_sizes(
    distill_script, tiny_teachers, glue_dir, tmp_path, tokenizer
):
    student_dir = tmp_path / "three_label_student"
    tiny_bert(32, 2, num_labels=3, seed=3).save_pretrained(student_dir)
    tokenizer.save_pretrained(student_dir)
    args = common_args(glue_dir, tmp_path / "out", "sst2") + ["--teacher_name_or_path", tiny_teachers[2]]
    args += ["--student_name_or_path", str(student_dir), "--measure_speedup", "false", "--report_to", "none"]
    with pytest.raises((RuntimeError, ValueError), match="ignore_mismatched_sizes"):
        distill_script.main(args)
    results = distill_script.main([*args, "--ignore_mismatched_sizes"])
    assert math.isfinite(results["eval_accuracy"])


def test_hub_dataset_config_and_token_reach_the_loaders(
    distill_script, tiny_teachers, glue_dir, tmp_path, monkeypatch
):
    import datasets

    seen = {}
    local = datasets.load_dataset(
        "json", data_files={split: str(glue_dir / "sst2" / f"{split}.jsonl") for split in ("train", "validation")}
    )

    def fake_load_dataset(name, config=None, **kwargs):
        seen.update(name=name, config=config, token=kwargs.get("token"))
        return local

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    args = ["--task_name", "sst2", "--dataset_name", "someone/glue-copy", "--dataset_config_name", "sst2_v2"]
    args += ["--token", "hf_secret", "--teacher_name_or_path", tiny_teachers[2], "--student_layers", "1"]
    args += ["--output_dir", str(tmp_path / "out"), "--do_eval", "--max_eval_samples", "4", "--report_to", "none"]
    results = distill_script.main([*args, "--measure_speedup", "false"])
    assert seen == {"name": "someone/glue-copy", "config": "sst2_v2", "token": "hf_secret"}
    assert math.isfinite(results["eval_accuracy"])


def test_transfer_rows_from_a_file_and_from_a_split(distill_script, tiny_teachers, glue_dir, tmp_path, data_dir):
    """SST-2 with unlabeled sentences from a json-lines file (labelled share 0.5), and STS-B (regression) with its
    hidden-label test split as transfer data; both count their rows in the summary and the card."""
    import datasets

    sentences = datasets.load_dataset(
        "json", data_files=str(data_dir / "glue" / "sst2" / "train.jsonl"), split="train"
    ).select(range(100, 140))
    transfer_file = tmp_path / "unlabeled.jsonl"
    sentences.select_columns(["sentence"]).to_json(transfer_file)
    output_dir = tmp_path / "sst2"
    args = common_args(glue_dir, output_dir, "sst2") + ["--teacher_name_or_path", tiny_teachers[2]]
    args += ["--student_layers", "2", "--report_to", "none", "--measure_speedup", "false"]
    results = distill_script.main(
        args + ["--transfer_file", str(transfer_file), "--max_transfer_samples", "32", "--labelled_batch_share", "0.5"]
    )
    assert results["summary"]["training_rows"] == {"labelled": GLUE_FIXTURE_ROWS["train"], "unlabeled": 32}
    assert all(
        {"loss_ce", "loss_kd", "loss_global", "loss_local"} <= set(entry) for entry in logged_losses(output_dir)
    )
    card = (output_dir / "README.md").read_text()
    assert f"{GLUE_FIXTURE_ROWS['train']} labelled and 32 unlabeled" in card

    output_dir = tmp_path / "stsb"
    args = common_args(glue_dir, output_dir, "stsb") + ["--teacher_name_or_path", tiny_teachers[1]]
    args += ["--student_layers", "2", "--report_to", "none", "--measure_speedup", "false"]
    split_args = ["--transfer_dataset_name", str(glue_dir / "stsb"), "--transfer_split", "test"]
    results = distill_script.main(args + split_args)
    assert results["summary"]["training_rows"]["unlabeled"] == GLUE_FIXTURE_ROWS["validation"]
    assert math.isfinite(results["eval_spearmanr"])


def test_transfer_rows_that_repeat_evaluation_text_are_flagged(
    distill_script, tiny_teachers, glue_dir, tmp_path, caplog
):
    args = common_args(glue_dir, tmp_path / "student", "sst2") + ["--teacher_name_or_path", tiny_teachers[2]]
    args += ["--student_layers", "2", "--report_to", "none", "--measure_speedup", "false", "--do_train", "false"]
    with caplog.at_level("WARNING"):
        distill_script.main(args + ["--transfer_dataset_name", str(glue_dir / "sst2"), "--transfer_split", "test"])
    assert "12 of the 12 transfer rows repeat a text of the validation split" in caplog.text


def test_transfer_data_without_the_text_columns_are_refused(distill_script, tiny_teachers, glue_dir, tmp_path):
    transfer_file = tmp_path / "other.csv"
    transfer_file.write_text("text\nan unlabeled sentence\n")
    args = common_args(glue_dir, tmp_path / "student", "sst2") + ["--teacher_name_or_path", tiny_teachers[2]]
    args += ["--student_layers", "2", "--transfer_file", str(transfer_file)]
    with pytest.raises(ValueError, match=r"lack the text column\(s\) \['sentence'\].*they have \['text'\]"):
        distill_script.main(args)
