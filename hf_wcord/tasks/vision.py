"""Image classification data for the vision examples: model presets, loading (Hub, image folder, Fashion-MNIST idx
files) and preprocessing with training augmentation, done in torch so that no image library beyond PIL is needed."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import torch
from transformers import AutoConfig, PretrainedConfig
from transformers.utils import logging

from ..unlabeled import add_transfer_rows
from .data import load_fashion_mnist

logger = logging.get_logger(__name__)

FIXED_SIZE_MODEL_TYPES = ("vit", "deit", "beit", "data2vec-vision")

# Small image classifiers built from configs (no pretrained vision weights exist offline). The ViT/DeiT presets are
# written for 28x28 inputs; `preset_config` fits their image size and patch grid to the data.
VISION_PRESETS: dict[str, dict[str, Any]] = {
    "resnet-small": {
        "model_type": "resnet", "embedding_size": 32, "hidden_sizes": [32, 64, 128, 256], "depths": [2, 2, 2, 2],
        "layer_type": "basic",
    },
    "resnet-mini": {
        "model_type": "resnet", "embedding_size": 24, "hidden_sizes": [24, 48, 96, 192], "depths": [1, 1, 1, 1],
        "layer_type": "basic",
    },
    "resnet-tiny": {
        "model_type": "resnet", "embedding_size": 16, "hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1],
        "layer_type": "basic",
    },
    "convnext-small": {
        "model_type": "convnext", "patch_size": 2, "hidden_sizes": [32, 64, 128, 256], "depths": [1, 1, 3, 1],
    },
    "convnext-tiny": {
        "model_type": "convnext", "patch_size": 2, "hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1],
    },
    "vit-small": {
        "model_type": "vit", "image_size": 28, "patch_size": 4, "hidden_size": 192, "num_hidden_layers": 6,
        "num_attention_heads": 3, "intermediate_size": 384,
    },
    "vit-tiny": {
        "model_type": "vit", "image_size": 28, "patch_size": 4, "hidden_size": 96, "num_hidden_layers": 4,
        "num_attention_heads": 3, "intermediate_size": 192,
    },
    "deit-tiny": {
        "model_type": "deit", "image_size": 28, "patch_size": 4, "hidden_size": 96, "num_hidden_layers": 4,
        "num_attention_heads": 3, "intermediate_size": 192,
    },
}  # fmt: skip


def patch_size_for(image_size: tuple[int, int]) -> int:
    """Patch size for a ViT-style preset: a grid of about 8x8 patches, patches of at least 4 pixels (4 at 28 or 32
    pixels, 8 at 64, 28 at 224)."""
    return max(4, min(image_size) // 8)


def preset_config(
    name: str, num_channels: int, labels: list[str], image_size: tuple[int, int] | None = None
) -> PretrainedConfig:
    """The config of a named preset for `num_channels`-channel images of `image_size` (height, width) and the given
    class names. Convolutional presets read any size; ViT/DeiT presets get `image_size` and a patch size that gives
    a grid of about 8x8 patches (`patch_size_for`)."""
    if name not in VISION_PRESETS:
        raise ValueError(f"Unknown preset {name!r}: choose one of {', '.join(VISION_PRESETS)}.")
    settings = dict(VISION_PRESETS[name])
    model_type = settings.pop("model_type")
    if image_size is not None and model_type in FIXED_SIZE_MODEL_TYPES:
        height, width = image_size
        settings["image_size"] = height if height == width else [height, width]
        settings["patch_size"] = patch_size_for(image_size)
    return AutoConfig.for_model(
        model_type,
        num_channels=num_channels,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **settings,
    )


def needs_fixed_size(config: PretrainedConfig) -> bool:
    """Whether the model only reads images of `config.image_size` (patch embeddings with fixed position embeddings);
    convolutional models read any size and their `image_size`, when set, is only a default."""
    return getattr(config, "model_type", None) in FIXED_SIZE_MODEL_TYPES


@dataclass
class ImageDataArguments:
    """Where the images come from and how they are preprocessed."""

    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset, e.g. 'zalando-datasets/fashion_mnist'."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Config of the Hub dataset."})
    train_dir: str | None = field(
        default=None, metadata={"help": "Image folder (one sub-folder per class) to train on."}
    )
    validation_dir: str | None = field(default=None, metadata={"help": "Image folder to evaluate on."})
    fashion_mnist_dir: str | None = field(
        default=None, metadata={"help": "Folder with the original Fashion-MNIST idx .gz files (offline)."}
    )
    image_column_name: str = field(default="image", metadata={"help": "Column holding the images."})
    label_column_name: str = field(default="label", metadata={"help": "Column holding the class labels."})
    train_val_split: float = field(
        default=0.1, metadata={"help": "Fraction of the training set held out for evaluation when there is no split."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Train on the first N examples."})
    transfer_dir: str | None = field(
        default=None,
        metadata={
            "help": (
                "A folder of unlabeled images (sub-folders are read, their names are not labels) to distil on "
                "besides the labelled training images."
            )
        },
    )
    max_transfer_samples: int | None = field(
        default=None, metadata={"help": "Use the first N transfer images (after shuffling with the seed)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on the first N examples."})
    augment: bool = field(
        default=True,
        metadata={"help": "Random crops (4-pixel padding at 28x28, scaled with the size) and horizontal flips."},
    )

    def __post_init__(self) -> None:
        sources = [name for name in ("dataset_name", "train_dir", "fashion_mnist_dir") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError(
                "Give exactly one data source: --dataset_name (Hub), --train_dir (image folder) or "
                f"--fashion_mnist_dir (idx files); got {sources or 'none'}."
            )


def load_image_data(
    data_args: ImageDataArguments, cache_dir: str | None = None, token: str | None = None
) -> tuple[datasets.DatasetDict, list[str]]:
    """Raw `train` and `validation` splits with `image`/`label` columns, and the class names."""
    if data_args.fashion_mnist_dir:
        raw = datasets.DatasetDict(
            train=load_fashion_mnist(data_args.fashion_mnist_dir, "train").remove_columns("idx"),
            validation=load_fashion_mnist(data_args.fashion_mnist_dir, "test").remove_columns("idx"),
        )
    elif data_args.train_dir:
        files = {"train": f"{data_args.train_dir}/**"}
        if data_args.validation_dir:
            files["validation"] = f"{data_args.validation_dir}/**"
        raw = datasets.load_dataset("imagefolder", data_files=files, cache_dir=cache_dir)
    else:
        raw = datasets.load_dataset(
            data_args.dataset_name, data_args.dataset_config_name, cache_dir=cache_dir, token=token
        )
    image_column, label_column = data_args.image_column_name, data_args.label_column_name
    for column in (image_column, label_column):
        if column not in raw["train"].column_names:
            raise ValueError(
                f"The training data has no {column!r} column (it has {raw['train'].column_names}): set "
                "--image_column_name / --label_column_name."
            )
    if image_column != "image":
        raw = raw.rename_column(image_column, "image")
    if label_column != "label":
        raw = raw.rename_column(label_column, "label")
    if "validation" not in raw:
        evaluation = "test" if "test" in raw else None
        if evaluation is None:
            split = raw["train"].train_test_split(test_size=data_args.train_val_split, seed=0)
            raw = datasets.DatasetDict(train=split["train"], validation=split["test"])
        else:
            raw["validation"] = raw.pop(evaluation)
    feature = raw["train"].features["label"]
    labels = list(feature.names) if isinstance(feature, datasets.ClassLabel) else sorted(set(raw["train"]["label"]))
    return raw, [str(label) for label in labels]


@dataclass
class ImagePreprocessing:
    """Image -> normalised `(channels, height, width)` float tensor, with optional training augmentation.

    Attributes:
        size: (height, width) the model reads.
        num_channels: 1 (grayscale) or 3; grayscale images are repeated to 3 channels, RGB ones averaged to 1.
        mean, std: per-channel normalisation.
    """

    size: tuple[int, int]
    num_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def for_model(
        cls, config: PretrainedConfig, processor: Any | None, native_size: tuple[int, int]
    ) -> ImagePreprocessing:
        """From the model's image processor when it has one, else from its config and the data's native size."""
        num_channels = getattr(config, "num_channels", 3)
        size = native_size
        image_size = getattr(config, "image_size", None) if needs_fixed_size(config) else None
        if image_size:
            size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        mean: tuple[float, ...] = (0.5,) * num_channels
        std: tuple[float, ...] = (0.5,) * num_channels
        if processor is not None:
            processor_size = getattr(processor, "size", None) or {}
            if "height" in processor_size:
                size = (processor_size["height"], processor_size["width"])
            elif "shortest_edge" in processor_size:
                size = (processor_size["shortest_edge"],) * 2
            mean = tuple(getattr(processor, "image_mean", mean))[:num_channels]
            std = tuple(getattr(processor, "image_std", std))[:num_channels]
        return cls(tuple(size), num_channels, mean, std)

    def to_tensor(self, image: Any) -> torch.Tensor:
        if hasattr(image, "convert"):
            image = image.convert("L" if self.num_channels == 1 else "RGB")
        array = np.asarray(image, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array)
        tensor = tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)
        if tensor.shape[0] != self.num_channels:
            tensor = tensor.mean(dim=0, keepdim=True) if self.num_channels == 1 else tensor[:1].expand(3, -1, -1)
        if tuple(tensor.shape[1:]) != self.size:
            tensor = torch.nn.functional.interpolate(
                tensor[None], size=self.size, mode="bilinear", antialias=True, align_corners=False
            )[0]
        return tensor

    def augment(self, tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random crop after reflection-free zero padding of size/7 pixels, then a random horizontal flip."""
        pad = max(1, math.ceil(self.size[0] / 7))
        padded = torch.nn.functional.pad(tensor, (pad, pad, pad, pad))
        top, left = (int(torch.randint(0, 2 * pad + 1, (1,), generator=generator)) for _ in range(2))
        tensor = padded[:, top : top + self.size[0], left : left + self.size[1]]
        if torch.rand(1, generator=generator).item() < 0.5:
            tensor = tensor.flip(-1)
        return tensor

    def normalize(self, tensor: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=tensor.dtype)[:, None, None]
        std = torch.tensor(self.std, dtype=tensor.dtype)[:, None, None]
        return (tensor - mean) / std

    def transform(self, train: bool) -> Callable[[dict[str, list]], dict[str, list]]:
        """A batched `set_transform` function: `image` -> `pixel_values` (augmented when `train`)."""

        def apply(batch: dict[str, list]) -> dict[str, list]:
            pixels = []
            for image in batch["image"]:
                tensor = self.to_tensor(image)
                pixels.append(self.normalize(self.augment(tensor) if train else tensor))
            out = {name: values for name, values in batch.items() if name != "image"}
            out["pixel_values"] = pixels
            return out

        return apply


def native_image_size(dataset: datasets.Dataset) -> tuple[int, int]:
    first = dataset[0]["image"]
    if hasattr(first, "size") and not isinstance(first, np.ndarray) and not isinstance(first.size, int):
        width, height = first.size
        return height, width
    array = np.asarray(first)
    return array.shape[0], array.shape[1]


def collate_images(rows: list[dict[str, Any]], index_column: str | None = "idx") -> dict[str, torch.Tensor]:
    """Stack `pixel_values`, `label` (as `labels`) and, when `index_column` is set and present, the index."""
    batch = {"pixel_values": torch.stack([torch.as_tensor(row["pixel_values"]) for row in rows])}
    batch["labels"] = torch.tensor([int(row["label"]) for row in rows])
    if index_column is not None and index_column in rows[0]:
        batch[index_column] = torch.tensor([int(row[index_column]) for row in rows])
    return batch


def prepare_image_splits(
    raw: datasets.DatasetDict,
    preprocessing: ImagePreprocessing,
    data_args: ImageDataArguments,
    seed: int,
    num_proc: int | None = None,
    transfer: datasets.Dataset | None = None,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Train split (shuffled, cut, followed by the unlabeled `transfer` images (label -1) when given, with `idx`
    0..N-1; augmented on the fly, or preprocessed once when augmentation is off so that a teacher cache can be used)
    and the preprocessed validation split."""
    train = raw["train"].shuffle(seed=seed)
    if data_args.max_train_samples is not None:
        train = train.select(range(min(data_args.max_train_samples, len(train))))
    if transfer is not None:
        train = train.select_columns(["image", "label"])
        if train.features["image"] != transfer.features["image"]:  # e.g. arrays (idx files) and image files
            train = train.cast_column("image", datasets.Image())
            transfer = transfer.cast_column("image", datasets.Image())
        train = add_transfer_rows(train, transfer)
    else:
        train = train.add_column("idx", list(range(len(train))))
    validation = raw["validation"]
    if data_args.max_eval_samples is not None:
        validation = validation.select(range(min(data_args.max_eval_samples, len(validation))))
    validation = validation.map(
        preprocessing.transform(train=False), batched=True, remove_columns=["image"], num_proc=num_proc
    )
    if data_args.augment:
        train.set_transform(preprocessing.transform(train=True))
    else:
        train = train.map(
            preprocessing.transform(train=False), batched=True, remove_columns=["image"], num_proc=num_proc
        )
    return train, validation.with_format("torch")


def load_image_classifier(
    name_or_path: str | None,
    config_name: str | None,
    preset: str | None,
    num_channels: int,
    labels: list[str],
    hub_kwargs: dict[str, Any],
    image_size: tuple[int, int] | None = None,
    ignore_mismatched_sizes: bool = False,
) -> tuple[Any, Any | None]:
    """An image classifier from exactly one of: a Hub id or folder (with its image processor, if it has one), a
    config (random init), or a named preset (random init, fitted to `image_size`). Returns
    `(model, image_processor or None)`.

    A pretrained model keeps its head unless `ignore_mismatched_sizes`, which gives it a new head with the data's
    labels (and their names) when the sizes differ; a head of another size without it is refused with that advice.
    """
    from transformers import AutoModelForImageClassification

    sources = [value for value in (name_or_path, config_name, preset) if value]
    if len(sources) != 1:
        raise ValueError(
            "Choose a model with exactly one of a name/path, a config or a preset (one of "
            f"{', '.join(VISION_PRESETS)}); got {sources or 'none'}."
        )
    head = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }
    if preset or config_name:
        config = (
            preset_config(preset, num_channels, labels, image_size)
            if preset
            else AutoConfig.from_pretrained(config_name, **head, **hub_kwargs)
        )
        # A config that names no architecture gets the model type's first image-classification class.
        config.architectures = config.architectures or []
        return AutoModelForImageClassification.from_config(
            config, trust_remote_code=hub_kwargs.get("trust_remote_code", False)
        ), None
    relabel = {**head, "ignore_mismatched_sizes": True} if ignore_mismatched_sizes else {}
    model = AutoModelForImageClassification.from_pretrained(name_or_path, **relabel, **hub_kwargs)
    if model.config.num_labels != len(labels):
        raise ValueError(
            f"{name_or_path!r} predicts {model.config.num_labels} classes but the data has {len(labels)}: pass "
            "--ignore_mismatched_sizes to give it a new classification head for the data's labels."
        )
    return model, load_image_processor(name_or_path, hub_kwargs)


def load_image_processor(name_or_path: str, hub_kwargs: dict[str, Any]) -> Any | None:
    """The image processor saved with a model, or None when it has none (models built from configs)."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(name_or_path, **hub_kwargs)
    except (OSError, ValueError):
        return None


def image_processor_for(preprocessing: ImagePreprocessing) -> Any:
    """A ViT image processor (the PIL backend, which needs no torchvision) that reproduces the evaluation
    preprocessing, saved with the models so that `AutoImageProcessor.from_pretrained` prepares images as in
    training."""
    from transformers import ViTImageProcessorPil

    height, width = preprocessing.size
    return ViTImageProcessorPil(
        do_resize=True,
        size={"height": height, "width": width},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(preprocessing.mean),
        image_std=list(preprocessing.std),
    )


def accuracy_metrics(prediction: Any) -> dict[str, float]:
    """`compute_metrics` for classification: top-1 accuracy."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return {"accuracy": float((np.argmax(logits, axis=-1) == prediction.label_ids).mean())}
