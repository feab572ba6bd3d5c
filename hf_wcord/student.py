"""Make a shallower student from a BERT-class teacher (DistilBERT / PKD-style initialisation)."""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Sequence

from torch import nn
from transformers import PreTrainedModel

_LAYER_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?(?:layer|layers))\.(?P<index>\d+)\.(?P<rest>.+)$")


def uniform_layer_choice(num_teacher_layers: int, num_student_layers: int) -> list[int]:
    """Evenly spaced teacher layers ending with the last one: 12 -> 3 gives [3, 7, 11]; 6 -> 3 gives [1, 3, 5]."""
    if not 1 <= num_student_layers <= num_teacher_layers:
        raise ValueError(
            f"A student made from a {num_teacher_layers}-layer teacher can have 1..{num_teacher_layers} layers, "
            f"not {num_student_layers}."
        )
    return [round((k + 1) * num_teacher_layers / num_student_layers) - 1 for k in range(num_student_layers)]


def gathered_parameters(model: nn.Module) -> contextlib.AbstractContextManager:
    """A context in which the parameters of a model partitioned by DeepSpeed ZeRO-3 (loaded under `zero.Init`) are
    whole on every process, so that they can be read; a no-op for any other model."""
    if any(hasattr(parameter, "ds_id") for parameter in model.parameters()):
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None)
    return contextlib.nullcontext()


def init_student_from_teacher(teacher: PreTrainedModel, layers: Sequence[int] | int) -> PreTrainedModel:
    """A student of the teacher's class and config holding the teacher's embeddings, the chosen encoder layers
    (in the given order), and every other non-layer weight (pooler, classifier head).

    Args:
        teacher: a BERT-class model (BERT, RoBERTa, MiniLM, ELECTRA, MPNet, DistilBERT, ...), any task head.
        layers: indices (0-based) of the teacher's encoder layers to copy, e.g. `[0, 4, 8, 11]`, or a layer count
            for evenly spaced layers (see [`uniform_layer_choice`]).

    Returns:
        A new model with `num_hidden_layers = len(layers)`, loadable with the Auto classes once saved.
    """
    num_teacher_layers = teacher.config.num_hidden_layers
    if isinstance(layers, int):
        layers = uniform_layer_choice(num_teacher_layers, layers)
    layers = list(layers)
    if not layers:
        raise ValueError("`layers` is empty: name at least one teacher layer to copy.")
    invalid = [index for index in layers if not 0 <= index < num_teacher_layers]
    if invalid:
        raise ValueError(
            f"Teacher layers {invalid} do not exist: the teacher has {num_teacher_layers} layers, numbered "
            f"0..{num_teacher_layers - 1}."
        )
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = type(teacher)(config)
    with gathered_parameters(teacher):
        teacher_state = {key: value.detach().clone() for key, value in teacher.state_dict().items()}
    student_state = {}
    for key in student.state_dict():
        match = _LAYER_KEY.match(key)
        if match and f"{match['prefix']}.{num_teacher_layers - 1}.{match['rest']}" in teacher_state:
            source = f"{match['prefix']}.{layers[int(match['index'])]}.{match['rest']}"
        else:
            source = key
        if source not in teacher_state:
            raise ValueError(
                f"Cannot initialise student weight {key!r} from the teacher: {type(teacher).__name__} is not a "
                "BERT-class encoder with a `layer.N.` module list."
            )
        student_state[key] = teacher_state[source]
    student.load_state_dict(student_state)
    return student.to(teacher.device)
