"""The benchmarks' cell files: runs reused across invocations, and read against the defaults of the code that ran
them, so that a change of the library defaults reruns exactly the runs it changes."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks", "quality"))

from cell_recorder import CellRecorder, rebase  # noqa: E402

OLD = {"alpha_kd": 1.0, "lambda_global": 0.2, "lambda_local": 0.5}
NEW = {"alpha_kd": 1.0, "lambda_global": 0.1, "lambda_local": 1.0}
METHODS = {"kd": {"lambda_global": 0.0, "lambda_local": 0.0}, "wcord+kd": {}, "no warm-up": {"critic_warmup_steps": 0}}


def test_rebase_rewrites_settings_relative_to_new_defaults():
    assert rebase({}, OLD, NEW) == {"lambda_global": 0.2, "lambda_local": 0.5}
    assert rebase({"lambda_global": 0.1}, OLD, NEW) == {"lambda_local": 0.5}
    assert rebase({"lambda_global": 0.0, "lambda_local": 0.0}, OLD, NEW) == {"lambda_global": 0.0, "lambda_local": 0.0}
    assert rebase({"critic_warmup_steps": 0}, OLD, NEW) == {
        "critic_warmup_steps": 0,
        "lambda_global": 0.2,
        "lambda_local": 0.5,
    }


def write_cell(path, defaults):
    runs = [
        {"method": name, "phase": "final", "seed": 0, "settings": settings, "eval": 0.5}
        for name, settings in METHODS.items()
    ]
    with open(path, "w") as handle:
        json.dump({"defaults": defaults, "runs": runs, "invocations": []}, handle)


def test_changed_defaults_rerun_only_the_methods_they_change(tmp_path):
    path = str(tmp_path / "cell.json")
    write_cell(path, OLD)
    header = {"defaults": NEW, "arguments": []}
    recorder = CellRecorder(path, header, resume=True, expected_settings=METHODS.get)
    trained = []

    def train(name):
        def run():
            trained.append(name)
            return {"eval": 0.6}

        return run

    for name, settings in METHODS.items():
        recorder.run({"method": name, "phase": "final", "seed": 0, "settings": settings}, train(name))
    recorder.save(minutes=1.0)
    assert trained == ["wcord+kd", "no warm-up"]
    with open(path) as handle:
        cell = json.load(handle)
    assert cell["defaults"] == NEW
    assert sorted(run["method"] for run in cell["runs"]) == sorted(METHODS)
    assert [run["eval"] for run in cell["runs"] if run["method"] == "kd"] == [0.5]
    superseded = {run["method"]: run["settings"] for run in cell["superseded_runs"]}
    assert superseded == {
        "wcord+kd": {"lambda_global": 0.2, "lambda_local": 0.5},
        "no warm-up": {"critic_warmup_steps": 0, "lambda_global": 0.2, "lambda_local": 0.5},
    }


def test_same_defaults_reuse_every_run(tmp_path):
    path = str(tmp_path / "cell.json")
    write_cell(path, OLD)
    recorder = CellRecorder(path, {"defaults": OLD, "arguments": []}, resume=True, expected_settings=METHODS.get)
    for name, settings in METHODS.items():
        recorder.run({"method": name, "phase": "final", "seed": 0, "settings": settings}, lambda: {"eval": 0.9})
    assert [run["eval"] for run in recorder.runs] == [0.5, 0.5, 0.5]


def test_a_cell_without_recorded_defaults_is_refused(tmp_path):
    path = str(tmp_path / "cell.json")
    with open(path, "w") as handle:
        json.dump({"runs": []}, handle)
    with pytest.raises(ValueError, match="records no `defaults`.*--output_dir"):
        CellRecorder(path, {"defaults": NEW, "arguments": []}, resume=True)


@pytest.mark.parametrize(
    ("setting", "then", "later"), [("student_negatives", "bank", "batch"), ("critic_gate", False, True)]
)
def test_a_cell_older_than_a_setting_reads_as_that_settings_only_value_then(tmp_path, setting, then, later):
    """Cells recorded before `student_negatives` (or `critic_gate`) existed ran the bank's negatives (no gate): a new
    default supersedes their WCoRD runs (not KD's, which has no global term), and the old value's default keeps
    them."""
    path = str(tmp_path / "cell.json")
    write_cell(path, OLD)
    for default, superseded in ((then, []), (later, ["no warm-up", "wcord+kd"])):
        header = {"defaults": {**OLD, setting: default}, "arguments": []}
        recorder = CellRecorder(path, header, resume=True, expected_settings=METHODS.get)
        assert sorted(run["method"] for run in recorder.superseded) == superseded
    assert recorder.superseded[0]["settings"][setting] == then


def test_each_trained_run_and_invocation_records_its_teacher_and_a_reused_run_keeps_its_own(tmp_path):
    path = str(tmp_path / "cell.json")
    first = {"defaults": NEW, "arguments": [], "teacher": {"eval": 0.85, "fingerprint": "first"}}
    recorder = CellRecorder(path, first, resume=True)
    recorder.run({"method": "kd", "phase": "final", "seed": 0, "settings": {}}, lambda: {"eval": 0.6})
    recorder.save(minutes=1.0)
    # The teacher is trained again (another machine): the kd run is reused, the new run records the new teacher.
    second = {**first, "teacher": {"eval": 0.85, "fingerprint": "second"}}
    recorder = CellRecorder(path, second, resume=True)
    recorder.run({"method": "kd", "phase": "final", "seed": 0, "settings": {}}, lambda: {"eval": 0.0})
    recorder.run({"method": "kd", "phase": "final", "seed": 1, "settings": {}}, lambda: {"eval": 0.7})
    recorder.save(minutes=1.0)
    with open(path) as handle:
        cell = json.load(handle)
    runs = {run["seed"]: run for run in cell["runs"]}
    assert [invocation["teacher_fingerprint"] for invocation in cell["invocations"]] == ["first", "second"]
    assert runs[0]["teacher_fingerprint"] == "first" and runs[0]["eval"] == 0.6
    assert runs[1]["teacher_fingerprint"] == "second"


def test_a_retrained_teacher_keeps_the_files_earlier_teacher_once(tmp_path):
    path = str(tmp_path / "cell.json")
    first = {"defaults": NEW, "arguments": [], "teacher": {"eval": 0.85, "fingerprint": "first"}}
    CellRecorder(path, first, resume=True).save(minutes=1.0)
    second = {**first, "teacher": {"eval": 0.86, "fingerprint": "second"}}
    for header in (second, second, first):
        CellRecorder(path, header, resume=True).save(minutes=1.0)
        with open(path) as handle:
            cell = json.load(handle)
    # After first -> second -> second -> first: the file's teacher is the first again, and the second is kept once.
    assert cell["teacher"]["fingerprint"] == "first"
    assert cell["earlier_teachers"] == [{"eval": 0.86, "fingerprint": "second"}]
    CellRecorder(path, first, resume=False).save()
    with open(path) as handle:
        assert "earlier_teachers" not in json.load(handle)
