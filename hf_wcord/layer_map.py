"""The layer map: which teacher hidden states are matched with which student hidden states."""

from __future__ import annotations

from collections.abc import Sequence

LAYER_MAP_CHOICES = ("auto", "uniform", "last")


def normalize_layer_map(value: str | Sequence[Sequence[int]]) -> str:
    """The layer map as the string a config stores: a named choice, `'teacher:student,...'`, or a list of
    `(teacher, student)` pairs (the Python API's natural form) written as that string. Raises a ValueError that names
    the accepted forms for anything else."""
    if isinstance(value, str):
        if value not in LAYER_MAP_CHOICES:
            parse_layer_pairs(value)
        return value
    pairs = list(value) if isinstance(value, Sequence) else None
    if not pairs or not all(
        isinstance(pair, Sequence)
        and not isinstance(pair, str)
        and len(pair) == 2
        and all(isinstance(index, int) and not isinstance(index, bool) for index in pair)
        for pair in pairs
    ):
        raise ValueError(
            f"Invalid layer map {value!r}: use 'auto', 'uniform', 'last', a string of 'teacher_layer:student_layer' "
            "pairs such as '4:1,8:2,12:3', or a list of (teacher_layer, student_layer) pairs such as "
            "[(4, 1), (8, 2), (12, 3)]."
        )
    return ",".join(f"{teacher}:{student}" for teacher, student in pairs)


def parse_layer_pairs(spec: str) -> list[tuple[int, int]]:
    """Parse `'teacher:student,...'` (indices into `hidden_states`, 0 = embeddings) into pairs."""
    pairs = []
    for item in spec.split(","):
        parts = item.strip().split(":")
        if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
            raise ValueError(
                f"Invalid layer map {spec!r}: use 'uniform', 'last', 'auto' or comma-separated "
                "'teacher_layer:student_layer' pairs such as '4:1,8:2,12:3'."
            )
        pairs.append((int(parts[0]), int(parts[1])))
    return pairs


def resolve_layer_map(spec: str, num_teacher_states: int, num_student_states: int) -> list[tuple[int, int]]:
    """Turn a layer-map spec into `(teacher_index, student_index)` pairs into the models' `hidden_states`.

    `hidden_states` holds the embedding output followed by one entry per layer (stage), so a model with L layers has
    L + 1 states. 'uniform' maps student layer k (1..L_S) to teacher layer round(k * L_T / L_S); 'last' pairs the
    final states, and so does 'auto'. Negative indices count from the end.
    """
    teacher_layers, student_layers = num_teacher_states - 1, num_student_states - 1
    if spec in ("auto", "last"):
        pairs = [(teacher_layers, student_layers)]
    elif spec == "uniform":
        pairs = [(round(k * teacher_layers / student_layers), k) for k in range(1, student_layers + 1)]
    else:
        pairs = parse_layer_pairs(spec)
    resolved = []
    for teacher_index, student_index in pairs:
        for name, index, count in (
            ("teacher", teacher_index, num_teacher_states),
            ("student", student_index, num_student_states),
        ):
            if not -count <= index < count:
                raise ValueError(
                    f"Layer map {spec!r} names {name} hidden state {index}, but the {name} has only {count} hidden "
                    f"states (0 = embeddings, 1..{count - 1} = layers): pick indices in that range."
                )
        resolved.append((teacher_index % num_teacher_states, student_index % num_student_states))
    return resolved
