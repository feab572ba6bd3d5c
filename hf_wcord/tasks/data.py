"""Readers for local copies of the data sets the examples use (for machines without the Hub)."""

from __future__ import annotations

import gzip
import os

import datasets
import numpy as np

FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_IDX_DTYPE = {0x08: np.uint8}


def read_idx(path: str) -> np.ndarray:
    """Read an idx file (optionally gzipped): magic 0x00 0x00 dtype ndim, big-endian dims, then the raw data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPE:
        raise ValueError(f"{path} is not an idx file of unsigned bytes.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=_IDX_DTYPE[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {shape}, found {array.size} values.")
    return array.reshape(shape)


def load_fashion_mnist(directory: str, split: str = "train", limit: int | None = None) -> datasets.Dataset:
    """Fashion-MNIST from the original idx `.gz` files as a `datasets.Dataset`.

    Columns: `image` (28x28 uint8 array), `label` (0..9) and `idx` (the example's position, for the memory bank).
    """
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"Unknown Fashion-MNIST split {split!r}: use 'train' or 'test'.")
    image_file, label_file = (os.path.join(directory, name) for name in FASHION_MNIST_FILES[split])
    for path in (image_file, label_file):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: point `directory` at the folder with the Fashion-MNIST files.")
    images, labels = read_idx(image_file), read_idx(label_file)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    features = datasets.Features(
        {
            "image": datasets.Array2D(shape=(28, 28), dtype="uint8"),
            "label": datasets.ClassLabel(names=FASHION_MNIST_LABELS),
            "idx": datasets.Value("int64"),
        }
    )
    return datasets.Dataset.from_dict(
        {"image": images, "label": labels.astype(np.int64), "idx": np.arange(len(labels))}, features=features
    )
