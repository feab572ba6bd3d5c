"""A teacher-output cache: the frozen teacher's logits (when it has a head) and pooled mapped-layer features, computed
once per training set and read back by example index instead of running the teacher at every step.

Layout of a cache folder: `teacher_cache.json` (fingerprint, shapes) and one float32 `.npy` file per array
(`logits.npy` when the teacher has logits, `features_<l>.npy`), memory-mapped on reading, row i holding the example
whose index column is i.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.utils import logging

from .features import get_hidden_states, pooled_features
from .teacher_inputs import LABEL_COLUMNS, TEACHER_PREFIX, has_teacher_inputs, teacher_inputs

logger = logging.get_logger(__name__)

CACHE_META_NAME = "teacher_cache.json"
CACHE_FORMAT_VERSION = 1


@dataclass
class CachedTeacherOutputs:
    """Stands in for the teacher's model output: `logits` (n, C; None for an encoder without a head) and the pooled
    `features` of each mapped layer."""

    logits: torch.Tensor | None
    features: list[torch.Tensor]


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a model's class, config and weights."""
    digest = hashlib.sha256(type(model).__name__.encode())
    config = getattr(model, "config", None)
    if config is not None:
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def dataset_fingerprint(
    dataset: Any, batch_size: int = 1024, show_progress: bool = False, index_column: str = "idx"
) -> str:
    """SHA-256 of every column the teacher could read (all but the labels; only its own `teacher_*` inputs and the
    index when the data carry them), row by row in dataset order, so that another teacher tokenizer, max length,
    subset or order gives another fingerprint. `show_progress` draws a progress bar."""
    import pyarrow as pa

    columns = [name for name in dataset.column_names if name not in LABEL_COLUMNS]
    if has_teacher_inputs(dataset.column_names):
        columns = [name for name in columns if name.startswith(TEACHER_PREFIX) or name == index_column]
    view = dataset.select_columns(columns).with_format("arrow")
    digest = hashlib.sha256(json.dumps(columns).encode())
    starts = range(0, len(view), batch_size)
    for start in tqdm(starts, desc="Fingerprinting the training set", disable=not show_progress, leave=False):
        sink = pa.BufferOutputStream()
        table = view[start : start + batch_size].replace_schema_metadata(None)  # not `datasets`' own fingerprint
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()


def check_cacheable(dataset: Any, index_column: str) -> None:
    """Refuse training sets whose teacher inputs are not fixed (on-the-fly transforms) or not keyed by index."""
    if not hasattr(dataset, "column_names") or not hasattr(dataset, "with_format"):
        raise ValueError(
            "The teacher cache needs a `datasets.Dataset` training set (its content is fingerprinted); got "
            f"{type(dataset).__name__}. Convert it with `Dataset.from_dict`/`from_generator`, or drop `teacher_cache`."
        )
    if getattr(dataset, "format", {}).get("type") == "custom":
        raise ValueError(
            "The training set has an on-the-fly transform (`set_transform`/`with_transform`, e.g. random "
            "augmentation), so the teacher would see different inputs every epoch and cached outputs would be "
            "wrong: apply deterministic preprocessing with `dataset.map` instead, or train without `teacher_cache`."
        )
    if index_column not in dataset.column_names:
        raise ValueError(
            f"The teacher cache is keyed by the {index_column!r} column, which the training set lacks: add it with "
            f"`dataset.map(lambda _, i: {{'{index_column}': i}}, with_indices=True)`."
        )
    index = dataset.with_format("numpy")[index_column]
    if len(index) and not np.array_equal(np.sort(index), np.arange(len(index))):
        raise ValueError(
            f"The teacher cache needs the {index_column!r} column to number the training examples 0..N-1 "
            "(each once); renumber it after selecting or shuffling."
        )


class TeacherCache:
    """Read access to a built cache; see the module docstring for the layout."""

    def __init__(self, directory: str) -> None:
        with open(os.path.join(directory, CACHE_META_NAME), encoding="utf-8") as handle:
            self.meta = json.load(handle)
        self.directory = directory
        logits_path = os.path.join(directory, "logits.npy")
        self.logits = np.load(logits_path, mmap_mode="r") if os.path.isfile(logits_path) else None
        self.features = [
            np.load(os.path.join(directory, f"features_{i}.npy"), mmap_mode="r")
            for i in range(len(self.meta["teacher_layers"]))
        ]

    def __len__(self) -> int:
        return self.features[0].shape[0]

    def lookup(self, index: torch.Tensor, device: torch.device | str) -> CachedTeacherOutputs:
        """The cached outputs of the examples with these dataset indices, on `device`."""
        rows = index.detach().to("cpu").numpy()

        def read(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array[rows])).to(device)

        logits = read(self.logits) if self.logits is not None else None
        return CachedTeacherOutputs(logits, [read(array) for array in self.features])


def _differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    return [key for key in expected if found.get(key) != expected[key]]


@torch.no_grad()
def build_teacher_cache(
    directory: str,
    teacher: nn.Module,
    dataset: Any,
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]],
    prepare: Callable[[dict[str, Any]], dict[str, Any]],
    teacher_layers: Sequence[int],
    pooling: str,
    fingerprint: dict[str, Any],
    index_column: str,
    batch_size: int = 64,
    show_progress: bool = False,
) -> TeacherCache:
    """Run the teacher once over `dataset` (in eval mode, fp32) and write the cache atomically into `directory`.

    Args:
        collate: turns a list of rows into a batch (the trainer's collator, unused columns removed).
        prepare: moves a batch to the teacher's device.
        teacher_layers: indices into the teacher's `hidden_states` whose pooled features are stored.
        fingerprint: what the cache was built from; stored and compared on reuse.
        show_progress: draw a progress bar over the batches.
    """
    staging = f"{directory.rstrip(os.sep)}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    was_training = teacher.training
    teacher.eval()
    arrays: dict[str, np.lib.format.open_memmap] = {}
    try:
        starts = range(0, len(dataset), batch_size)
        for start in tqdm(starts, desc="Building the teacher cache", disable=not show_progress):
            rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = prepare(collate(rows))
            index = batch.pop(index_column).detach().to("cpu").numpy()
            batch = teacher_inputs(batch)
            with torch.autocast(device_type=next(teacher.parameters()).device.type, enabled=False):
                outputs = teacher(**batch, output_hidden_states=True)
            features = pooled_features(
                get_hidden_states(outputs, "teacher"), list(teacher_layers), batch.get("attention_mask"), pooling
            )
            logits = getattr(outputs, "logits", None)  # None for an encoder without a head
            named = ({"logits": logits} if logits is not None else {}) | {
                f"features_{i}": f for i, f in enumerate(features)
            }
            for name, values in named.items():
                if name not in arrays:
                    arrays[name] = np.lib.format.open_memmap(
                        os.path.join(staging, f"{name}.npy"), mode="w+", dtype=np.float32,
                        shape=(len(dataset), *values.shape[1:]),
                    )  # fmt: skip
                arrays[name][index] = values.float().cpu().numpy()
        for array in arrays.values():
            array.flush()
        meta = {"version": CACHE_FORMAT_VERSION, "teacher_layers": list(teacher_layers), **fingerprint}
        with open(os.path.join(staging, CACHE_META_NAME), "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=2)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        teacher.train(was_training)
        arrays.clear()
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(staging, directory)
    return TeacherCache(directory)


def open_or_build_teacher_cache(
    directory: str, fingerprint: dict[str, Any], build: Callable[[], TeacherCache]
) -> TeacherCache:
    """Reuse the cache in `directory` when its fingerprint matches, else (re)build it, saying why."""
    meta_path = os.path.join(directory, CACHE_META_NAME)
    expected = {"version": CACHE_FORMAT_VERSION, **fingerprint}
    if os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as handle:
            found = json.load(handle)
        stale = _differences(expected, found)
        if not stale:
            logger.info(f"Using the teacher cache in {directory}.")
            return TeacherCache(directory)
        logger.warning(f"The teacher cache in {directory} is stale ({', '.join(stale)} changed): rebuilding it.")
    elif os.path.isdir(directory) and os.listdir(directory):
        raise ValueError(
            f"`teacher_cache` points to {directory}, which holds other files and no {CACHE_META_NAME}: give an "
            "empty or new folder so that nothing else is overwritten."
        )
    else:
        logger.info(f"Building the teacher cache in {directory} (one teacher pass over the training set).")
    return build()
