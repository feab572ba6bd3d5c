"""Writing a benchmark's report: `results.json` (every cell with its summary), `results.md` (the tables) and
`results.png` (the plot, where matplotlib is installed)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def write_report_files(
    output_dir: str,
    suite: str,
    key: str,
    entries: list[dict[str, Any]],
    table: str,
    plot: Callable[[list[dict[str, Any]], str], bool],
) -> str:
    """Write the three files; return the table, with a note when the plot was skipped."""
    with open(os.path.join(output_dir, "results.json"), "w") as handle:
        json.dump({"suite": suite, key: entries}, handle, indent=2)
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
