"""The summary of a dataset run: ``summary.json`` and ``summary.csv``.

One row per pair (from its record, in dataset order; ``id`` is the dataset's id, ``folder`` the
pair's folder in the run), the counts of pairs explained, not
visually grounded and failed (with reasons), the dataset means computed by the run's metrics,
and the median, quartiles and extremes of the AUCs and box mass (pairs with an unstable
normalisation left out), which one pathological pair cannot move the way it moves a mean.

Where the dataset has reference answers, ``by_correctness`` splits the AUCs, pointing game and box
mass by whether the model answered correctly (the paper's focus-versus-correctness analysis), and
``reliance`` gives the share of answers the model gives about as confidently without the image.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from lvlm_heat.record import EXPLAINED, FAILED, NOT_GROUNDED, ExplanationRecord
from lvlm_heat.reporting.outputs import write_atomic, write_json_atomic

SUMMARY_FIELDS = ("id", "folder", "status", "answer", "reference", "answer_match", "correct", "selected_tokens",
                  "deletion_auc", "insertion_auc", "unstable_normalization", "curve_out_of_range", "pointing_hit",
                  "box_mass", "no_image_ratio", "answered_without_image", "seconds", "reason")


def summary_row(record: ExplanationRecord) -> dict[str, Any]:
    """The summary's row of one pair (:data:`SUMMARY_FIELDS`)."""
    return {
        "id": record.pair_id, "folder": record.folder, "status": record.status, "answer": record.answer,
        "reference": record.reference, "answer_match": record.answer_match, "correct": record.correct,
        "selected_tokens": record.selected_tokens, "deletion_auc": _finite(record.deletion_auc),
        "insertion_auc": _finite(record.insertion_auc), "unstable_normalization": record.unstable,
        "curve_out_of_range": record.out_of_range, "pointing_hit": record.pointing_hit, "box_mass": record.box_mass,
        "no_image_ratio": record.no_image_ratio, "answered_without_image": record.answered_without_image,
        "seconds": record.seconds, "reason": record.reason,
    }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _share(flags: list[bool | None]) -> dict[str, float | int | None]:
    """Count of ``True``, count of known values and their ratio (``None`` values left out)."""
    known = [bool(f) for f in flags if f is not None]
    return {"count": sum(known), "of": len(known), "share": sum(known) / len(known) if known else None}


def correctness_split(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Deletion and insertion AUC, pointing game and box mass of correct and of wrong answers.

    ``None`` when no row has a reference. AUCs leave out pairs with an unstable normalisation, as the
    dataset means do; the pointing game is the share of hits among explained pairs with a box.
    """
    if not any(r.get("correct") is not None for r in rows):
        return None
    split = {}
    for name, wanted in (("correct", True), ("wrong", False)):
        group = [r for r in rows if r.get("correct") is wanted]
        explained = [r for r in group if r["status"] == EXPLAINED]
        stable = [r for r in explained if not r.get("unstable_normalization")]
        split[name] = {
            "pairs": len(group),
            "explained": len(explained),
            "not_grounded": sum(r["status"] == NOT_GROUNDED for r in group),
            "deletion_auc": distribution([r["deletion_auc"] for r in stable]),
            "insertion_auc": distribution([r["insertion_auc"] for r in stable]),
            "pointing_game": _share([r.get("pointing_hit") for r in explained]),
            "box_mass": distribution([r.get("box_mass") for r in explained]),
        }
    return split


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


def write_summary(run_dir: Path, records: list[ExplanationRecord], means: dict[str, float],
                  model: str, interrupted: int | None = None) -> dict[str, Any]:
    """Write ``summary.json`` and ``summary.csv`` into ``run_dir`` and return the summary.

    Args:
        run_dir: The run folder.
        records: Every pair's record, in dataset order.
        means: Dataset means by name (NaN where no pair contributed).
        model: The model's name.
        interrupted: For a run stopped part-way, the number of pairs it was given (``records`` are those finished):
            the summary's ``interrupted`` is then ``{"done": len(records), "of": interrupted}``.
    """
    rows = [summary_row(r) for r in records]
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
        "correct": _share([r.get("correct") for r in rows]),
        "by_correctness": correctness_split(rows),
        "reliance": {"answered_without_image": _share([r.get("answered_without_image") for r in rows])},
        "failures": {r["folder"]: r["reason"] for r in rows if r["status"] == FAILED},  # folders are unique
        "interrupted": None if interrupted is None else {"done": len(rows), "of": interrupted},
        "rows": rows,
    }
    write_json_atomic(run_dir / "summary.json", summary)
    lines = io.StringIO()
    writer = csv.DictWriter(lines, fieldnames=SUMMARY_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "selected_tokens": " ".join(row["selected_tokens"] or [])})
    write_atomic(run_dir / "summary.csv", lines.getvalue())
    return summary
