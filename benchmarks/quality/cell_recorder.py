"""A benchmark cell's JSON file: its runs, written after every run, reused by later invocations of the same code,
and read against the library defaults of the code that ran them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

# Settings added after the first cells were recorded, with the value every earlier run had (there was no other): a
# cell's recorded defaults are read with these beneath them.
DEFAULTS_BEFORE_THE_SETTING_EXISTED = {"student_negatives": "bank", "critic_gate": False}


def recorded_defaults(defaults: dict[str, Any], names: Any = DEFAULTS_BEFORE_THE_SETTING_EXISTED) -> dict[str, Any]:
    """A cell's recorded `defaults`, completed with the values of the settings its code predates (of those in
    `names`)."""
    return {
        **{name: value for name, value in DEFAULTS_BEFORE_THE_SETTING_EXISTED.items() if name in names},
        **defaults,
    }


# Settings that act only through one term, with that term's weight: where the weight is 0 they change nothing.
ACTS_THROUGH = {"student_negatives": "lambda_global", "critic_gate": "lambda_global"}


def rebase(settings: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A run's settings, recorded relative to the `old` defaults, rewritten relative to the `new` ones (what differs
    from them); settings that neither set of defaults names are kept as they are, and a setting whose term the run
    turned off is dropped (a KD run is the same whatever the global term's negatives)."""
    effective = {**old, **settings}
    inert = {name for name, weight in ACTS_THROUGH.items() if effective.get(weight, 1.0) == 0}
    return {
        name: value
        for name, value in effective.items()
        if (name not in new or new[name] != value) and name not in inert
    }


class CellRecorder:
    """The runs of one cell, written to its JSON file after every run; with `resume`, earlier runs of the same
    settings are reused instead of trained again.

    A cell records the library `defaults` its runs' settings are relative to. When the header's defaults differ from
    the file's, the earlier runs are rebased onto the new ones; a final run whose rebased settings are no longer its
    method's (`expected_settings(method)`, None where a method's settings are tuned) moves to `superseded_runs`,
    which the reports do not read, and the method runs again. Each run trained records the fingerprint of the header's
    teacher; when the header's teacher is not the file's (retrained on another machine), the file's is kept under
    `earlier_teachers`, for the runs that predate the per-run record."""

    def __init__(
        self,
        path: str,
        header: dict[str, Any],
        resume: bool,
        expected_settings: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        self.path = path
        self.header = header
        self.runs: list[dict[str, Any]] = []
        self.previous: list[dict[str, Any]] = []
        self.superseded: list[dict[str, Any]] = []
        self.invocations: list[dict[str, Any]] = []
        self.earlier_teachers: list[dict[str, Any]] = []
        if resume and os.path.isfile(path):
            with open(path) as handle:
                previous = json.load(handle)
            self.invocations = previous.get("invocations", [])
            self.earlier_teachers = earlier_teachers(previous, header)
            self.superseded = previous.get("superseded_runs", [])
            old, new = previous.get("defaults"), header.get("defaults")
            if old is not None and new is not None:
                old = recorded_defaults(old, new)
            if new is not None and old is None:
                raise ValueError(
                    f"{path} records no `defaults`, so its runs cannot be compared with this code's: add the defaults "
                    "of the commit that ran it to the file, or write this invocation to a fresh --output_dir."
                )
            for record in previous["runs"]:
                if new is not None and old != new:
                    record = {**record, "settings": rebase(record["settings"], old, new)}
                expected = None
                if expected_settings is not None and record.get("phase") == "final":
                    expected = expected_settings(record["method"])
                if expected is not None and record["settings"] != expected:
                    self.superseded.append(record)
                else:
                    self.previous.append(record)

    def run(self, key: dict[str, Any], train: Any) -> dict[str, Any]:
        for record in self.previous:
            if all(record.get(name) == value for name, value in key.items()):
                self.runs.append(record)
                return record
        # Runs are deterministic: the same settings, learning rate and seed (and data) under another method's name
        # (the tuned WCoRD choosing the defaults) reuse that run.
        same = [name for name in key if name not in ("method", "phase")]
        for record in self.runs:
            if all(record.get(name) == key[name] for name in same) and "reused_from" not in record:
                reused = {**record, **key, "reused_from": record["method"]}
                self.runs.append(reused)
                self.save()
                return reused
        record = {**key, **train(), **self.provenance()}
        self.runs.append(record)
        self.save()
        return record

    def provenance(self) -> dict[str, Any]:
        """What a run trained now records of where its inputs came from: the fingerprint of the teacher it learned
        from (teachers are retrained on each machine, so a cell's runs can span several)."""
        name = fingerprint(self.header.get("teacher"))
        return {} if name is None else {"teacher_fingerprint": name}

    def save(self, minutes: float | None = None) -> None:
        """Write the cell; with `minutes`, record this invocation (its arguments, minutes and teacher) as finished."""
        if minutes is not None:
            self.invocations.append({"arguments": self.header["arguments"], "minutes": minutes, **self.provenance()})
        # Earlier runs that this invocation did not ask for (another method subset) are kept.
        kept = [record for record in self.previous if record not in self.runs]
        payload = {**self.header, "runs": self.runs + kept, "invocations": self.invocations}
        if self.earlier_teachers:
            payload["earlier_teachers"] = self.earlier_teachers
        if self.superseded:
            payload["superseded_runs"] = self.superseded
        with open(f"{self.path}.partial", "w") as handle:
            json.dump(payload, handle, indent=2)
        os.replace(f"{self.path}.partial", self.path)


def earlier_teachers(previous: dict[str, Any], header: dict[str, Any]) -> list[dict[str, Any]]:
    """The teachers a cell's file names that are not the new header's: its own `earlier_teachers` and its header's
    teacher, each once (by fingerprint)."""
    current = fingerprint(header.get("teacher"))
    kept: list[dict[str, Any]] = []
    for teacher in [*previous.get("earlier_teachers", []), previous.get("teacher")]:
        name = fingerprint(teacher)
        if name is not None and name != current and name not in {fingerprint(other) for other in kept}:
            kept.append(teacher)
    return kept


def fingerprint(teacher: Any) -> str | None:
    return teacher.get("fingerprint") if isinstance(teacher, dict) else None
