"""Pooled per-example features from `hidden_states`, and the map from teacher layers to student layers."""

from __future__ import annotations

import torch

from .config import LAYER_MAP_CHOICES


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
    elif spec in LAYER_MAP_CHOICES:
        raise ValueError(f"Unhandled layer map {spec!r}.")
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


def pool_hidden_state(
    hidden_state: torch.Tensor, attention_mask: torch.Tensor | None = None, pooling: str = "first"
) -> torch.Tensor:
    """One vector per example from a hidden state.

    `(batch, channels, height, width)` feature maps are global-average pooled; `(batch, tokens, dim)` sequences use
    `pooling`: 'first' (the [CLS] token) or 'mean' (over the tokens where `attention_mask` is 1); `(batch, dim)`
    passes through.
    """
    if hidden_state.dim() == 4:
        return hidden_state.mean(dim=(2, 3))
    if hidden_state.dim() == 2:
        return hidden_state
    if hidden_state.dim() != 3:
        raise ValueError(f"Cannot pool a hidden state of shape {tuple(hidden_state.shape)}.")
    if pooling == "first":
        return hidden_state[:, 0]
    if pooling != "mean":
        raise ValueError(f"Unknown pooling {pooling!r}: use 'first' or 'mean'.")
    if attention_mask is None or attention_mask.shape != hidden_state.shape[:2]:
        return hidden_state.mean(dim=1)
    weights = attention_mask.to(hidden_state.dtype).unsqueeze(-1)
    return (hidden_state * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def get_hidden_states(outputs: object, role: str) -> tuple[torch.Tensor, ...]:
    """The `hidden_states` of a model output, or a clear error when the model did not return them."""
    hidden_states = getattr(outputs, "hidden_states", None)
    if hidden_states is None and isinstance(outputs, dict):
        hidden_states = outputs.get("hidden_states")
    if not hidden_states:
        raise ValueError(
            f"The {role} model returned no `hidden_states` although `output_hidden_states=True` was passed. The "
            "global and local WCoRD terms need them: use a transformers model that supports "
            "`output_hidden_states`, or set `lambda_global=0` and `lambda_local=0` for logit-only distillation."
        )
    return tuple(hidden_states)


def pooled_features(
    hidden_states: tuple[torch.Tensor, ...],
    indices: list[int],
    attention_mask: torch.Tensor | None,
    pooling: str,
) -> list[torch.Tensor]:
    """Pooled features of the hidden states at `indices`."""
    return [pool_hidden_state(hidden_states[i], attention_mask, pooling) for i in indices]
