"""Checkpoints: the distiller's state beside the Trainer's, and finding a checkpoint that is safe to resume from.

The Trainer writes a checkpoint's files one after another and `trainer_state.json` last, so a run killed while
saving leaves a folder without it. Resuming from such a folder would silently restart the schedule; these helpers
skip it (for `resume_from_checkpoint=True`) or refuse it (for an explicit path).
"""

from __future__ import annotations

import json
import os
import re

from safetensors.torch import load_file, save_file
from torch import nn
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

logger = logging.get_logger(__name__)

TRAINER_STATE_NAME = "trainer_state.json"
DISTILLER_STATE_NAME = "wcord_distiller.safetensors"
_CHECKPOINT_PATTERN = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def missing_checkpoint_files(checkpoint: str, required: tuple[str, ...] = ()) -> list[str]:
    """The files that a complete checkpoint has and `checkpoint` lacks (`trainer_state.json` plus `required`)."""
    return [name for name in (TRAINER_STATE_NAME, *required) if not os.path.isfile(os.path.join(checkpoint, name))]


def latest_complete_checkpoint(output_dir: str, required: tuple[str, ...] = ()) -> str | None:
    """The highest-step `checkpoint-N` folder in `output_dir` that holds every file of a finished save."""
    if not os.path.isdir(output_dir):
        return None
    steps = sorted(
        (int(match.group(1)), name)
        for name in os.listdir(output_dir)
        if (match := _CHECKPOINT_PATTERN.match(name)) and os.path.isdir(os.path.join(output_dir, name))
    )
    for _, name in reversed(steps):
        path = os.path.join(output_dir, name)
        missing = missing_checkpoint_files(path, required)
        if not missing:
            return path
        logger.warning(f"Skipping {path}: it lacks {missing}, so its save was interrupted.")
    return None


def save_distiller_state(distiller: nn.Module, layer_pairs: list[tuple[int, int]], output_dir: str) -> None:
    """Write the heads and negative stores to `output_dir/wcord_distiller.safetensors` atomically (a partial file
    renamed once complete), with the layer pairs in its metadata."""
    state = {name: tensor.detach().contiguous() for name, tensor in distiller.state_dict().items()}
    path = os.path.join(output_dir, DISTILLER_STATE_NAME)
    save_file(state, f"{path}.partial", metadata={"layer_pairs": json.dumps(layer_pairs)})
    os.replace(f"{path}.partial", path)


def load_distiller_state(distiller: nn.Module, checkpoint: str) -> None:
    """Restore the heads and negative stores from a checkpoint (with a warning when it holds none). The tensors are
    read on the CPU and copied into the distiller's, wherever those live."""
    path = os.path.join(checkpoint, DISTILLER_STATE_NAME)
    if not os.path.isfile(path):
        logger.warning(
            f"{checkpoint} holds no {DISTILLER_STATE_NAME}: the projection heads and the memory bank start afresh, "
            "so the resumed run will not match an uninterrupted one."
        )
        return
    distiller.load_state_dict(load_file(path))
