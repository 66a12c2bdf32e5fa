"""The summary of a dataset run: ``summary.json`` and ``summary.csv``.

One row per pair (from its record, in dataset order; ``id`` is the dataset's id, ``folder`` the
pair's folder in the run), the counts of pairs explained, not
visually grounded and failed (with reasons), the dataset means computed by the run's metrics,
and the median, quartiles and extremes of the AUCs and box mass (pairs with an unstable
normalisation left out), which one pathological pair cannot move the way it moves a mean.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from lvlm_heat.record import EXPLAINED, FAILED, NOT_GROUNDED
from lvlm_heat.reporting.outputs import write_json_atomic

SUMMARY_FIELDS = ("id", "folder", "status", "answer", "reference", "answer_match", "selected_tokens", "deletion_auc",
                  "insertion_auc", "unstable_normalization", "curve_out_of_range", "pointing_hit", "box_mass", "seconds", "reason")


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """The summary's row of one pair's ``result.json`` record."""
    return {key: record.get(key) for key in SUMMARY_FIELDS}


def distribution(values: list[float | None]) -> dict[str, float | int | None]:
    """Count, mean, median, quartiles and extremes of the finite values given (``None`` and NaN left out).

    >>> distribution([0.1, 0.2, 0.3, None, 0.5])
    {'count': 4, 'mean': 0.275, 'median': 0.25, 'q25': 0.175, 'q75': 0.35, 'min': 0.1, 'max': 0.5}
    """
    kept = sorted(v for v in values if v is not None and math.isfinite(v))
    if not kept:
        return {"count": 0, "mean": None, "median": None, "q25": None, "q75": None, "min": None, "max": None}

    def quantile(q: float) -> float:
        position = q * (len(kept) - 1)
        low = math.floor(position)
        high = min(low + 1, len(kept) - 1)
        return round(kept[low] + (position - low) * (kept[high] - kept[low]), 12)

    return {"count": len(kept), "mean": round(math.fsum(kept) / len(kept), 12), "median": quantile(0.5),
            "q25": quantile(0.25), "q75": quantile(0.75), "min": kept[0], "max": kept[-1]}


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
        "curve_out_of_range": sum(bool(r["curve_out_of_range"]) for r in rows),
        "means": {k: (None if math.isnan(v) else v) for k, v in means.items()},
        "distributions": {
            name: distribution([r[name] for r in rows if r["status"] == EXPLAINED and not r["unstable_normalization"]])
            for name in ("deletion_auc", "insertion_auc", "box_mass")
        },
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
