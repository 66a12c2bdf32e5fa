"""The summary of a dataset run: ``summary.json`` and ``summary.csv``.

One row per pair (from its record, in dataset order; ``id`` is the dataset's id, ``folder`` the
pair's folder in the run), the counts of pairs explained, not
visually grounded and failed (with reasons), and the dataset means computed by the
run's metrics.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from lvlm_heat.record import EXPLAINED, FAILED, NOT_GROUNDED
from lvlm_heat.reporting.outputs import write_json_atomic

SUMMARY_FIELDS = ("id", "folder", "status", "answer", "reference", "answer_match", "selected_tokens", "deletion_auc",
                  "insertion_auc", "unstable_normalization", "pointing_hit", "box_mass", "seconds", "reason")


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """The summary's row of one pair's ``result.json`` record."""
    return {key: record.get(key) for key in SUMMARY_FIELDS}


def write_summary(run_dir: Path, rows: list[dict[str, Any]], means: dict[str, float], model: str) -> dict[str, Any]:
    """Write ``summary.json`` and ``summary.csv`` into ``run_dir`` and return the summary.

    Args:
        run_dir: The run folder.
        rows: :func:`summary_row` of every pair, in dataset order.
        means: Dataset means by name (NaN where no pair contributed).
        model: The model's name.
    """
    counts = {status: sum(r["status"] == status for r in rows) for status in (EXPLAINED, NOT_GROUNDED, FAILED)}
    summary = {
        "model": model,
        "pairs": len(rows),
        "explained": counts[EXPLAINED],
        "not_grounded": counts[NOT_GROUNDED],
        "failed": counts[FAILED],
        "unstable_normalization": sum(bool(r["unstable_normalization"]) for r in rows),
        "means": {k: (None if math.isnan(v) else v) for k, v in means.items()},
        "failures": {r["folder"]: r["reason"] for r in rows if r["status"] == FAILED},  # folders are unique
        "rows": rows,
    }
    write_json_atomic(run_dir / "summary.json", summary)
    with open(run_dir / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "selected_tokens": " ".join(row["selected_tokens"] or [])})
    return summary
