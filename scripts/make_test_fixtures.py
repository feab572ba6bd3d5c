"""Cut the small real-data fixtures in tests/fixtures/ from full local copies of the data sets.

    python scripts/make_test_fixtures.py --data_dir ../shared/data

Reads `<data_dir>/glue/{sst2,rte,stsb}/{train,validation}.jsonl` (the Hub's `nyu-mll/glue` columns) and the four
Fashion-MNIST idx files in `<data_dir>/fashion-mnist/`, and writes the first rows of each split in the same formats,
so that the test suite runs on a fresh clone without the full data.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
GLUE_ROWS = {
    "sst2": {"train": 512, "validation": 128},
    "rte": {"train": 128, "validation": 64},
    "stsb": {"train": 64, "validation": 128},
}
FASHION_MNIST_ROWS = {"train": 512, "t10k": 256}


def cut_glue(data_dir: str) -> None:
    for task, splits in GLUE_ROWS.items():
        os.makedirs(os.path.join(FIXTURES, "glue", task), exist_ok=True)
        for split, rows in splits.items():
            with open(os.path.join(data_dir, "glue", task, f"{split}.jsonl"), encoding="utf-8") as source:
                lines = list(itertools.islice(source, rows))
            with open(os.path.join(FIXTURES, "glue", task, f"{split}.jsonl"), "w", encoding="utf-8") as target:
                target.writelines(lines)


def cut_idx(source: str, target: str, rows: int) -> None:
    """The first `rows` items of an idx file, with the header's first dimension changed to match."""
    with gzip.open(source, "rb") as handle:
        data = handle.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    item = int(np.prod(shape[1:], dtype=np.int64))
    header = data[:4] + rows.to_bytes(4, "big") + data[8 : 4 + 4 * ndim]
    body = data[4 + 4 * ndim : 4 + 4 * ndim + rows * item]
    with gzip.GzipFile(target, "wb", mtime=0) as handle:
        handle.write(header + body)


def cut_fashion_mnist(data_dir: str) -> None:
    folder = os.path.join(FIXTURES, "fashion-mnist")
    os.makedirs(folder, exist_ok=True)
    for split, rows in FASHION_MNIST_ROWS.items():
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{split}-{kind}-ubyte.gz"
            cut_idx(os.path.join(data_dir, "fashion-mnist", name), os.path.join(folder, name), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="Folder holding glue/ and fashion-mnist/.")
    data_dir = parser.parse_args().data_dir
    cut_glue(data_dir)
    cut_fashion_mnist(data_dir)


if __name__ == "__main__":
    main()
