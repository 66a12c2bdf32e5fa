"""Paired bootstrap statistics for comparing saliency explainers on the same pairs.

Every explainer runs on the same image-question pairs and reports per-pair metrics
(deletion AUC, insertion AUC, pointing hit as 0/1, box mass, seconds, passes). This
module turns those lists into a mean with a confidence interval, and into a paired
difference against a reference method.

The interval is Efron's percentile bootstrap (Efron & Tibshirani, *An Introduction to
the Bootstrap*, 1993, ch. 13): resample the ``n`` values with replacement, take the
mean of each resample, and report the ``(1 - level) / 2`` and ``(1 + level) / 2``
quantiles of those means, with numpy's default linear interpolation between order
statistics (``np.quantile(..., method="linear")``). When ``n ** n <= resamples`` every
one of the ``n ** n`` ordered resamples is enumerated once, so the interval of a small
example is exact and can be checked by hand; otherwise ``resamples`` resamples are drawn
from ``numpy.random.default_rng(seed)``, so a given seed always gives the same interval.

Methods are compared by paired differences: for each pair, the method's value minus the
reference's value, then the bootstrap of the mean of those differences. Both methods see
the same pairs, so how hard a pair is (which moves both methods together) cancels in the
difference, and the interval is much narrower than one built from two independent means.

Missing values (``None``, NaN, infinities) are dropped; in a paired difference the whole
pair is dropped when either side is missing. Booleans count as 0 and 1.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Interval", "bootstrap_mean", "compare_methods", "paired_difference"]


@dataclass(frozen=True)
class Interval:
    """A mean with its percentile bootstrap interval.

    Attributes:
        mean: Mean of the values used (NaN when there are none).
        low: Lower end of the bootstrap interval of the mean (NaN when there are no values).
        high: Upper end of the bootstrap interval of the mean (NaN when there are no values).
        count: Number of values used (finite ones only).
    """

    mean: float
    low: float
    high: float
    count: int

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready form ``{"mean", "low", "high", "n"}``, with NaN written as ``None``."""
        return {
            "mean": _none_if_nan(self.mean),
            "low": _none_if_nan(self.low),
            "high": _none_if_nan(self.high),
            "n": self.count,
        }


def bootstrap_mean(
    values: Sequence[float | bool | None],
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Mean of the finite values with its percentile bootstrap interval.

    Args:
        values: Per-pair values; ``None`` and non-finite values are dropped, booleans count as 0/1.
        level: Coverage of the interval, in (0, 1).
        resamples: Number of random resamples; all ``n ** n`` are enumerated instead when that is no more.
        seed: Seed of ``numpy.random.default_rng`` for the random resamples.

    Returns:
        The mean, the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled
        means, and the number of values used.

    Raises:
        ValueError: If ``level`` is not in (0, 1) or ``resamples`` is below 1.

    Example:
        >>> bootstrap_mean([0, 1], level=0.5)
        Interval(mean=0.5, low=0.375, high=0.625, count=2)
        >>> bootstrap_mean([None, True, float("nan")])
        Interval(mean=1.0, low=1.0, high=1.0, count=1)
    """
    _check_arguments(level, resamples)
    finite = _finite(np.array([_as_float(value) for value in values], dtype=np.float64))
    return _interval(finite, level, resamples, seed)


def paired_difference(
    values: Sequence[float | bool | None],
    reference: Sequence[float | bool | None],
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Mean of the per-pair differences ``values[i] - reference[i]`` with its bootstrap interval.

    A pair is used only when both sides are finite numbers.

    Args:
        values: Per-pair values of the method, in the same pair order as ``reference``.
        reference: Per-pair values of the reference method.
        level: Coverage of the interval, in (0, 1).
        resamples: Number of random resamples; all ``n ** n`` are enumerated instead when that is no more.
        seed: Seed of ``numpy.random.default_rng`` for the random resamples.

    Returns:
        The interval of the mean difference; ``count`` is the number of pairs used.

    Raises:
        ValueError: If the sequences differ in length, ``level`` is not in (0, 1) or ``resamples`` is below 1.

    Example:
        >>> paired_difference([1, 2, None], [0, 2, 5], level=0.5)
        Interval(mean=0.5, low=0.375, high=0.625, count=2)
    """
    _check_arguments(level, resamples)
    if len(values) != len(reference):
        raise ValueError(f"values and reference differ in length: {len(values)} != {len(reference)}")
    differences = np.array([_as_float(a) for a in values]) - np.array([_as_float(b) for b in reference])
    return _interval(_finite(differences), level, resamples, seed)


def compare_methods(
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str],
    reference: str,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per-method, per-metric bootstrap means, and paired differences against a reference method.

    Args:
        rows: ``rows[method]`` is the list of per-pair metric dicts, in the same pair order for
            every method; a dict may lack a metric or hold ``None`` for it.
        metrics: Metric names to summarise.
        reference: The method the others are compared with; must be a key of ``rows``.
        level: Coverage of the intervals, in (0, 1).
        resamples: Number of random resamples per interval.
        seed: Seed of every interval's random resamples.

    Returns:
        ``result[method][metric]`` is ``{"mean", "low", "high", "n"}`` (NaN as ``None``) and, for
        methods other than ``reference``, ``"difference"``: the same keys for method - reference.

    Raises:
        ValueError: If ``reference`` is not in ``rows``, methods differ in their number of pairs,
            ``level`` is not in (0, 1) or ``resamples`` is below 1.
    """
    _check_arguments(level, resamples)
    if reference not in rows:
        raise ValueError(f"reference method {reference!r} is not among {sorted(rows)}")
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for method, method_rows in rows.items():
        result[method] = {}
        for metric in metrics:
            values = _column(method_rows, metric)
            summary: dict[str, Any] = bootstrap_mean(values, level, resamples, seed).to_dict()
            if method != reference:
                baseline = _column(rows[reference], metric)
                summary["difference"] = paired_difference(values, baseline, level, resamples, seed).to_dict()
            result[method][metric] = summary
    return result


def _interval(values: np.ndarray, level: float, resamples: int, seed: int) -> Interval:
    """Percentile bootstrap interval of the mean of ``values``, an ``(n,)`` array of finite floats."""
    count = len(values)
    if count == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    means = values[_resample_indices(count, resamples, seed)].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2], method="linear")
    return Interval(float(values.mean()), float(low), float(high), count)


def _resample_indices(count: int, resamples: int, seed: int) -> np.ndarray:
    """Index matrix ``(R, n)``: all ``n ** n`` resamples when no more than ``resamples``, else random ones."""
    # n ** n >= 2 ** n for n >= 2, so the bit-length test skips building huge integers for large n.
    if count <= int(resamples).bit_length() and count**count <= resamples:
        return np.array(list(itertools.product(range(count), repeat=count)), dtype=np.intp)
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def _column(rows: Sequence[Mapping[str, Any]], metric: str) -> list[Any]:
    """One metric's value from each row, ``None`` where the row lacks it."""
    return [row.get(metric) for row in rows]


def _as_float(value: float | bool | None) -> float:
    """``value`` as a float; ``None`` becomes NaN and booleans 0/1."""
    return math.nan if value is None else float(value)


def _finite(values: np.ndarray) -> np.ndarray:
    """The finite entries of ``values``."""
    return values[np.isfinite(values)]


def _none_if_nan(value: float) -> float | None:
    """``None`` for NaN, else ``value``: JSON has no NaN."""
    return None if math.isnan(value) else value


def _check_arguments(level: float, resamples: int) -> None:
    """Raise ``ValueError`` naming the argument when ``level`` or ``resamples`` is out of range."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples!r}")
