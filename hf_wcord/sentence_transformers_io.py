"""Reading a teacher's sentence-transformers pipeline (pooling, normalisation) and saving a distilled student as a
sentence-transformers model (the transformer, pooling, an optional Dense layer to the teacher's width, Normalize),
so that `SentenceTransformer(path)` loads it and `AutoModel` still does."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from torch import nn

POOLING_OF_MODE = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "first",
    "pooling_mode_mean": "mean",
    "pooling_mode_cls": "first",
}


@dataclass
class SentencePipeline:
    """How a sentence-transformers model turns token states into a sentence embedding: `pooling` ('mean' or
    'first') and whether the embedding is L2-normalised."""

    pooling: str = "mean"
    normalize: bool = False


def read_sentence_pipeline(name_or_path: str | None) -> SentencePipeline | None:
    """The pipeline of a sentence-transformers model (its `modules.json` and pooling config), from a local folder or
    a Hub repository; None when it is not one (a plain transformers model, or a Hub model out of reach)."""
    if not name_or_path:
        return None

    def read(relative: str) -> dict | list | None:
        if os.path.isdir(name_or_path):
            path = os.path.join(name_or_path, relative)
            if not os.path.isfile(path):
                return None
        else:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

            try:
                path = hf_hub_download(name_or_path, relative)
            except (EntryNotFoundError, RepositoryNotFoundError, HfHubHTTPError, OSError, ValueError):
                return None  # no such repository or file, an invalid id, or no network
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)

    modules = read("modules.json")
    if modules is None:
        return None
    pipeline = SentencePipeline()
    for module in modules:
        kind = module["type"].rsplit(".", 1)[-1]
        if kind == "Normalize":
            pipeline.normalize = True
        elif kind == "Pooling":
            config = read(f"{module['path']}/config.json") or {}
            if isinstance(config.get("pooling_mode"), str):  # sentence-transformers 6: {"pooling_mode": "mean"}
                modes = [POOLING_OF_MODE.get(f"pooling_mode_{config['pooling_mode']}")]
            else:  # earlier versions: one boolean per mode
                modes = [
                    POOLING_OF_MODE.get(name) for name, on in config.items() if name.startswith("pooling_mode") and on
                ]
            if len(modes) != 1 or modes[0] is None:
                raise ValueError(
                    f"The sentence-transformers model {name_or_path} pools with {config}: only mean or CLS pooling is "
                    "supported; set `pooling` explicitly to distil it anyway."
                )
            pipeline.pooling = modes[0]
    return pipeline


def save_sentence_transformer(
    folder: str,
    pipeline: SentencePipeline,
    max_seq_length: int,
    dense: nn.Linear | None = None,
) -> None:
    """Write the sentence-transformers modules around the transformer already saved in `folder` (weights, config,
    tokenizer): `modules.json`, `sentence_bert_config.json`, `1_Pooling` and, when given, a `2_Dense` layer (no
    activation) and a `Normalize` module. Needs the `sentence-transformers` package."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ImportError(
            "Saving the student as a sentence-transformers model needs the package: `pip install "
            "sentence-transformers` (or `pip install hf_wcord[sentence-transformers]`)."
        ) from error
    try:
        from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
    transformer = Transformer(folder, max_seq_length=max_seq_length)
    dimension = (
        transformer.get_embedding_dimension()
        if hasattr(transformer, "get_embedding_dimension")
        else transformer.get_word_embedding_dimension()
    )
    modules: list[nn.Module] = [
        transformer,
        Pooling(dimension, pooling_mode="cls" if pipeline.pooling == "first" else "mean"),
    ]
    if dense is not None:
        bias = dense.bias.detach().clone().cpu() if dense.bias is not None else None
        layer = Dense(
            dense.in_features,
            dense.out_features,
            bias=bias is not None,
            activation_function=nn.Identity(),
            init_weight=dense.weight.detach().clone().cpu(),
            init_bias=bias,
        )
        modules.append(layer)
    if pipeline.normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(folder, create_model_card=False)
