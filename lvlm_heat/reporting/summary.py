"""The summary of a dataset run: ``summary.json`` and ``summary.csv``.

One row per pair (from its record, in dataset order; ``id`` is the dataset's id, ``folder`` the
pair's folder in the run), the counts of pairs explained, not
visually grounded and failed (with reasons), the dataset means computed by the run's metrics,
and the median, quartiles and extremes of the AUCs and box mass (pairs with an unstable
normalisation left out), which one pathological pair cannot move the way it moves a mean.

Where the dataset has reference answers, ``by_correctness`` splits the AUCs, pointing game and box
mass by whether the model answered correctly (the paper's focus-versus-correctness analysis), and
``reliance`` gives the share of answers the model gives about as confidently without the image.

``methods`` compares the explainers of ``--method`` on the same explained pairs (:func:`method_comparison`):
for each explainer, in ``--method`` order, the mean and 95% percentile bootstrap interval of each of
:data:`METHOD_METRICS` (:mod:`lvlm_heat.metrics.statistics`), and for every explainer after the first (the
reference) the paired difference to it, per pair, with its interval. The AUCs leave out pairs with an
unstable normalisation (the same pairs for every explainer); pointing game and box mass count pairs with a
box. A single-method run gets the block too, with its one explainer and no differences.

``summary.csv`` has the columns :data:`SUMMARY_FIELDS`, and nothing more in a single-method run. A run of
several explainers adds, after them, the columns :func:`method_columns` names: ``<first>_passes`` and
``<first>_seconds`` for the first explainer (its AUCs, pointing hit and box mass are the plain columns
already; the plain ``seconds`` is the whole pair's time), then ``<method>_deletion_auc``,
``<method>_insertion_auc``, ``<method>_pointing_hit``, ``<method>_box_mass``, ``<method>_passes`` and
``<method>_seconds`` for each further one, in ``--method`` order. They hold each pair's values as they are
(an unstable pair's AUCs too, as in the plain columns); ``summary.json``'s rows carry the same columns.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from lvlm_heat.config import TITLES
from lvlm_heat.metrics.statistics import compare_methods
from lvlm_heat.record import EXPLAINED, FAILED, NOT_GROUNDED, ExplanationRecord
from lvlm_heat.reporting.outputs import write_atomic, write_json_atomic

SUMMARY_FIELDS = ("id", "folder", "status", "answer", "reference", "answer_match", "correct", "selected_tokens",
                  "deletion_auc", "insertion_auc", "unstable_normalization", "curve_out_of_range", "pointing_hit",
                  "box_mass", "no_image_ratio", "answered_without_image", "seconds", "reason")
METHOD_METRICS = ("deletion_auc", "insertion_auc", "pointing_hit", "box_mass", "passes", "seconds")
"""What :func:`method_comparison` compares per explainer (``pointing_hit`` as 0/1, ``seconds`` the map's own)."""
LEVEL = 0.95
"""Coverage of the comparison's bootstrap intervals."""


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


def run_methods(records: list[ExplanationRecord]) -> list[str]:
    """The explainers of the run in ``--method`` order (every record's, in the order they first appear).

    >>> from lvlm_heat.record import MethodMap
    >>> record = ExplanationRecord("p", "Q?", methods=[MethodMap("igos", "", None, None, None),
    ...                                                MethodMap("gradient", "gradient", None, None, None)])
    >>> run_methods([ExplanationRecord("q", "Q?"), record])
    ['igos', 'gradient']
    """
    return list(dict.fromkeys(m.method for r in records for m in r.methods))


def method_values(record: ExplanationRecord, method: str) -> dict[str, Any]:
    """One explainer's :data:`METHOD_METRICS` on one pair, as they are (``None`` where it made no map)."""
    found = record.method_map(method)
    if found is None:
        return dict.fromkeys(METHOD_METRICS)
    return {"deletion_auc": _finite(found.deletion.auc), "insertion_auc": _finite(found.insertion.auc),
            "pointing_hit": found.pointing_hit, "box_mass": found.box_mass, "passes": found.passes,
            "seconds": found.seconds}


def method_columns(methods: list[str]) -> list[str]:
    """The summary's columns beyond :data:`SUMMARY_FIELDS` for a run of the explainers ``methods`` (see the
    module docstring; none for a single explainer).

    >>> method_columns(["igos"])
    []
    >>> method_columns(["igos", "gradient"])[:4]
    ['igos_passes', 'igos_seconds', 'gradient_deletion_auc', 'gradient_insertion_auc']
    """
    if len(methods) < 2:
        return []
    first, *others = methods
    return [f"{first}_passes", f"{first}_seconds", *(f"{m}_{metric}" for m in others for metric in METHOD_METRICS)]


def method_row(record: ExplanationRecord, methods: list[str]) -> dict[str, Any]:
    """A pair's values in the columns :func:`method_columns` names."""
    columns = method_columns(methods)
    values = {f"{m}_{metric}": value for m in methods for metric, value in method_values(record, m).items()}
    return {column: values[column] for column in columns}


def method_comparison(records: list[ExplanationRecord], level: float = LEVEL, resamples: int = 2000,
                      seed: int = 0) -> dict[str, Any] | None:
    """The explainers compared on the explained pairs (``None`` when no pair was explained).

    Args:
        records: Every pair's record; only explained ones count.
        level: Coverage of the bootstrap intervals.
        resamples: Resamples per interval (:func:`~lvlm_heat.metrics.statistics.bootstrap_mean`).
        seed: Seed of the resamples.

    Returns:
        ``reference`` (the first explainer), ``level``, ``resamples``, ``seed``, ``metrics`` (:data:`METHOD_METRICS`)
        and ``by_method``: per explainer in ``--method`` order, its ``title``, ``pairs`` (explained pairs with its
        map) and, per metric, ``{"mean", "low", "high", "n"}`` with, for every explainer but the reference,
        ``difference``: the same of the per-pair differences to the reference. AUCs leave out the pairs with
        an unstable normalisation.
    """
    explained = [r for r in records if r.status == EXPLAINED]
    methods = run_methods(explained)
    if not methods:
        return None
    rows = {}
    for method in methods:
        rows[method] = [method_values(r, method) for r in explained]
        for record, row in zip(explained, rows[method]):
            if record.unstable:
                row["deletion_auc"] = row["insertion_auc"] = None
    stats = compare_methods(rows, METHOD_METRICS, methods[0], level, resamples, seed)
    by_method = {m: {"title": TITLES.get(m, m), "pairs": sum(r.method_map(m) is not None for r in explained),
                     **stats[m]} for m in methods}
    return {"reference": methods[0], "level": level, "resamples": resamples, "seed": seed,
            "metrics": list(METHOD_METRICS), "by_method": by_method}


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
    methods = run_methods(records)
    rows = [{**summary_row(r), **method_row(r, methods)} for r in records]
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
        "methods": method_comparison(records),
        "interrupted": None if interrupted is None else {"done": len(rows), "of": interrupted},
        "rows": rows,
    }
    write_json_atomic(run_dir / "summary.json", summary)
    lines = io.StringIO()
    writer = csv.DictWriter(lines, fieldnames=[*SUMMARY_FIELDS, *method_columns(methods)])
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "selected_tokens": " ".join(row["selected_tokens"] or [])})
    write_atomic(run_dir / "summary.csv", lines.getvalue())
    return summary
