"""Pooled per-example features from a model's `hidden_states`."""

from __future__ import annotations

import torch


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
