"""The package layout: the method stands apart from the task plumbing, and the public names the README uses import."""

import subprocess
import sys


def test_the_method_does_not_import_the_task_plumbing():
    code = (
        "import sys, hf_wcord, hf_wcord.trainer, hf_wcord.teacher_cache, hf_wcord.model_card;"
        "print(sorted(name for name in sys.modules if name.startswith('hf_wcord.tasks')))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_the_public_names_import_from_the_package():
    import hf_wcord

    for name in hf_wcord.__all__:
        assert getattr(hf_wcord, name) is not None
    assert {"WCoRDConfig", "WCoRDTrainer", "init_student_from_teacher", "tokenize_for_teacher"} <= set(
        hf_wcord.__all__
    )
