"""Writing a benchmark's report: `results.json` (every cell with its summary), `results.md` (the tables) and
`results.png` (the plot, where matplotlib is installed)."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable
from typing import Any


def load_suite_cells(output_dir: str, suite: str) -> list[dict[str, Any]]:
    """The cells of one benchmark suite in `<output_dir>/cells/*.json`, in file-name order."""
    cells = []
    for path in sorted(glob.glob(os.path.join(output_dir, "cells", "*.json"))):
        with open(path) as handle:
            cell = json.load(handle)
        if cell.get("suite") == suite:
            cells.append(cell)
    return cells


def write_report_files(
    output_dir: str,
    suite: str,
    key: str,
    entries: list[dict[str, Any]],
    table: str,
    plot: Callable[[list[dict[str, Any]], str], bool],
    extra: dict[str, Any] | None = None,
) -> str:
    """Write the three files (`results.json` with `extra`'s keys beside the entries); return the table, with a note
    when the plot was skipped."""
    with open(os.path.join(output_dir, "results.json"), "w") as handle:
        json.dump({"suite": suite, key: entries, **(extra or {})}, handle, indent=2)
    with open(os.path.join(output_dir, "results.md"), "w") as handle:
        handle.write(table + "\n")
    plotted = plot(entries, os.path.join(output_dir, "results.png"))
    return table + ("" if plotted else "\n(plot skipped: matplotlib not installed)")


def pyplot() -> Any | None:
    """matplotlib's pyplot on the file-only Agg backend, or None where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt
