import pytest
import torch
from conftest import tiny_bert
from transformers import AutoModelForSequenceClassification

from hf_wcord import init_student_from_teacher
from hf_wcord.student import uniform_layer_choice


def test_student_holds_the_teacher_embeddings_chosen_layers_and_head():
    teacher = tiny_bert(32, 4)
    student = init_student_from_teacher(teacher, [0, 3])
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for key in ("bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight", "classifier.weight"):
        assert torch.equal(s_state[key], t_state[key])
    for student_layer, teacher_layer in ((0, 0), (1, 3)):
        key = "bert.encoder.layer.{}.attention.self.query.weight"
        assert torch.equal(s_state[key.format(student_layer)], t_state[key.format(teacher_layer)])


def test_student_with_every_layer_computes_the_teacher_function():
    teacher = tiny_bert(32, 3).eval()
    student = init_student_from_teacher(teacher, [0, 1, 2]).eval()
    input_ids = torch.randint(0, 1000, (2, 7))
    assert torch.allclose(student(input_ids).logits, teacher(input_ids).logits, atol=1e-6)


def test_layer_count_picks_evenly_spaced_layers():
    assert uniform_layer_choice(12, 3) == [3, 7, 11]
    assert uniform_layer_choice(6, 3) == [1, 3, 5]
    student = init_student_from_teacher(tiny_bert(16, 6), 2)
    assert student.config.num_hidden_layers == 2


def test_bad_layer_choices_are_clear_errors():
    teacher = tiny_bert(16, 2)
    with pytest.raises(ValueError, match=r"Teacher layers \[5\] do not exist.*0\.\.1"):
        init_student_from_teacher(teacher, [0, 5])
    with pytest.raises(ValueError, match="empty"):
        init_student_from_teacher(teacher, [])
    with pytest.raises(ValueError, match="1..2 layers"):
        init_student_from_teacher(teacher, 3)


def test_student_from_real_minilm_saves_and_loads_with_auto_classes(minilm_path, tmp_path):
    teacher = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    student = init_student_from_teacher(teacher, [1, 3, 5])
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert reloaded.config.num_hidden_layers == 3
    assert sum(p.numel() for p in reloaded.parameters()) < sum(p.numel() for p in teacher.parameters())
    key = "bert.encoder.layer.2.output.dense.weight"
    assert torch.equal(reloaded.state_dict()[key], teacher.state_dict()["bert.encoder.layer.5.output.dense.weight"])


def test_a_zero3_partitioned_teacher_is_gathered_before_its_layers_are_copied(monkeypatch):
    """Under ZeRO-3 each process holds an empty placeholder per parameter until `GatheredParameters` makes them
    whole: the copy must happen inside it (simulated here by a stand-in for DeepSpeed's context)."""
    import contextlib
    import sys
    from types import SimpleNamespace

    teacher = tiny_bert(32, 4, seed=0)
    full = {name: value.clone() for name, value in teacher.state_dict().items()}
    whole = {id(parameter): parameter.data for parameter in teacher.parameters()}
    for parameter in teacher.parameters():
        parameter.ds_id = 0
        parameter.data = torch.empty(0)
    gathered = []

    @contextlib.contextmanager
    def gathered_parameters(parameters, modifier_rank=None):
        gathered.append(len(parameters))
        for parameter in parameters:
            parameter.data = whole[id(parameter)]
        yield
        for parameter in parameters:
            parameter.data = torch.empty(0)

    stand_in = SimpleNamespace(zero=SimpleNamespace(GatheredParameters=gathered_parameters))
    monkeypatch.setitem(sys.modules, "deepspeed", stand_in)
    student = init_student_from_teacher(teacher, [0, 3])
    assert gathered == [len(list(teacher.parameters()))]
    copied = student.state_dict()["bert.encoder.layer.1.attention.self.query.weight"]
    assert torch.equal(copied, full["bert.encoder.layer.3.attention.self.query.weight"])
    assert torch.equal(student.state_dict()["classifier.weight"], full["classifier.weight"])
