"""Paired bootstrap statistics: hand-checked exact cases, missing values, Monte Carlo path, method tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lvlm_heat.metrics.statistics import Interval, bootstrap_mean, compare_methods, paired_difference


def test_two_values_exact_by_hand():
    # [0, 1]: 2 ** 2 = 4 resamples {0,0}, {0,1}, {1,0}, {1,1} -> sorted means [0, .5, .5, 1].
    # Level 0.5 asks for the 25% and 75% quantiles; linear interpolation puts quantile q at
    # position q * (4 - 1): 0.75 -> 0 + 0.75 * (0.5 - 0) = 0.375, 2.25 -> 0.5 + 0.25 * (1 - 0.5) = 0.625.
    interval = bootstrap_mean([0, 1], level=0.5)
    assert interval.mean == pytest.approx(0.5)
    assert interval.low == pytest.approx(0.375)
    assert interval.high == pytest.approx(0.625)
    assert interval.count == 2


def test_three_pair_difference_exact_by_hand():
    # method [1, 2, 6] - reference [0, 2, 3] = differences [1, 0, 3], mean 4/3.
    # 3 ** 3 = 27 ordered resamples; the sum of a resample and how many resamples give it:
    #   0 (0,0,0): 1; 1 (one 1): 3; 2 (two 1s): 3; 3 (1,1,1 or one 3): 1 + 3 = 4;
    #   4 (1,3,0): 6; 5 (1,1,3): 3; 6 (3,3,0): 3; 7 (3,3,1): 3; 9 (3,3,3): 1   -> 27 in all.
    # Sorted means (sum / 3), indices 0..26:
    #   0, 1/3, 1/3, 1/3, 2/3, 2/3, 2/3, 1, 1, 1, 1, 4/3, 4/3, 4/3, 4/3, 4/3, 4/3,
    #   5/3, 5/3, 5/3, 2, 2, 2, 7/3, 7/3, 7/3, 3
    # Level 0.95: quantile 0.025 at position 0.025 * 26 = 0.65 -> 0 + 0.65 * (1/3 - 0) = 13/60;
    #             quantile 0.975 at position 0.975 * 26 = 25.35 -> 7/3 + 0.35 * (3 - 7/3) = 77/30.
    # Level 0.5:  quantile 0.25 at 6.5 -> (2/3 + 1) / 2 = 5/6; quantile 0.75 at 19.5 -> (5/3 + 2) / 2 = 11/6.
    method, reference = [1, 2, 6], [0, 2, 3]
    wide = paired_difference(method, reference)
    assert wide.mean == pytest.approx(4 / 3)
    assert wide.low == pytest.approx(13 / 60)
    assert wide.high == pytest.approx(77 / 30)
    assert wide.count == 3
    narrow = paired_difference(method, reference, level=0.5)
    assert (narrow.low, narrow.high) == (pytest.approx(5 / 6), pytest.approx(11 / 6))


def test_exact_path_ignores_seed():
    assert bootstrap_mean([1.0, 0.0, 3.0], seed=0) == bootstrap_mean([1.0, 0.0, 3.0], seed=123)


def test_missing_values_drop_pairs():
    # Only pairs 0 and 3 have both sides finite: differences [1, 0] -> same as [0, 1] above.
    method = [1.0, None, 5.0, 2.0, math.inf]
    reference = [0.0, 3.0, float("nan"), 2.0, 1.0]
    interval = paired_difference(method, reference, level=0.5)
    assert interval == Interval(mean=0.5, low=0.375, high=0.625, count=2)


def test_missing_values_dropped_from_a_mean():
    interval = bootstrap_mean([None, 2.0, float("nan"), -math.inf, 4.0], level=0.5)
    # [2, 4]: means [2, 3, 3, 4] -> 25% at 0.75 -> 2.75, 75% at 2.25 -> 3.25.
    assert interval == Interval(mean=3.0, low=pytest.approx(2.75), high=pytest.approx(3.25), count=2)


def test_booleans_count_as_zero_one():
    assert bootstrap_mean([True, False], level=0.5) == bootstrap_mean([1.0, 0.0], level=0.5)
    assert paired_difference([True, True, False], [False, True, False]).mean == pytest.approx(1 / 3)
    assert bootstrap_mean([np.bool_(True), np.bool_(True), False, True]).mean == pytest.approx(0.75)


def test_empty_is_nan_with_count_zero():
    interval = bootstrap_mean([None, float("nan")])
    assert interval.count == 0
    assert math.isnan(interval.mean) and math.isnan(interval.low) and math.isnan(interval.high)
    assert interval.to_dict() == {"mean": None, "low": None, "high": None, "n": 0}
    assert paired_difference([1.0], [None]).count == 0
    assert bootstrap_mean([]).count == 0


def test_single_value_has_zero_width():
    assert bootstrap_mean([0.7]) == Interval(mean=0.7, low=0.7, high=0.7, count=1)
    assert paired_difference([None, 3.0], [1.0, 1.0]) == Interval(mean=2.0, low=2.0, high=2.0, count=1)


def test_to_dict():
    assert Interval(0.5, 0.25, 0.75, 4).to_dict() == {"mean": 0.5, "low": 0.25, "high": 0.75, "n": 4}


def test_monte_carlo_deterministic_for_a_seed():
    values = np.random.default_rng(7).normal(size=30).tolist()
    first = bootstrap_mean(values, seed=3)
    assert first == bootstrap_mean(values, seed=3)
    assert first != bootstrap_mean(values, seed=4)  # random path: the seed matters
    assert first.low < first.mean < first.high
    assert first.mean == pytest.approx(float(np.mean(values)))


def test_monte_carlo_width_matches_normal_theory():
    values = np.random.default_rng(1).normal(loc=0.0, scale=1.0, size=200)
    interval = bootstrap_mean(values.tolist())
    assert interval.count == 200
    assert interval.low < interval.mean < interval.high
    expected = 2 * 1.96 / math.sqrt(200)
    assert interval.high - interval.low == pytest.approx(expected, rel=0.2)


def test_few_values_beyond_exact_limit_use_random_resamples():
    # 4 ** 4 = 256 > 100 resamples: random path, so two seeds give different intervals.
    values = [0.0, 1.0, 3.0, 7.0]
    assert bootstrap_mean(values, resamples=100, seed=0) != bootstrap_mean(values, resamples=100, seed=1)
    assert bootstrap_mean(values, resamples=256, seed=0) == bootstrap_mean(values, resamples=256, seed=1)


def _rows():
    return {
        "ours": [
            {"deletion_auc": 0.1, "pointing_hit": True, "seconds": 2.0},
            {"deletion_auc": 0.3, "pointing_hit": False},
            {"deletion_auc": None, "pointing_hit": True, "seconds": 4.0},
        ],
        "gradcam": [
            {"deletion_auc": 0.2, "pointing_hit": False, "seconds": 1.0},
            {"deletion_auc": 0.5, "pointing_hit": False, "seconds": 1.0},
            {"deletion_auc": 0.4, "pointing_hit": True, "seconds": 1.0},
        ],
    }


def test_compare_methods_shape_and_values():
    metrics = ["deletion_auc", "pointing_hit", "seconds"]
    table = compare_methods(_rows(), metrics, reference="gradcam")
    assert set(table) == {"ours", "gradcam"}
    for method in table:
        assert set(table[method]) == set(metrics)
    for summary in table["gradcam"].values():
        assert set(summary) == {"mean", "low", "high", "n"}
    for summary in table["ours"].values():
        assert set(summary) == {"mean", "low", "high", "n", "difference"}
        assert set(summary["difference"]) == {"mean", "low", "high", "n"}
    assert table["ours"]["deletion_auc"]["n"] == 2
    assert table["ours"]["deletion_auc"]["mean"] == pytest.approx(0.2)
    # Paired on pairs 0 and 1 only: [0.1 - 0.2, 0.3 - 0.5] = [-0.1, -0.2].
    assert table["ours"]["deletion_auc"]["difference"]["mean"] == pytest.approx(-0.15)
    assert table["ours"]["deletion_auc"]["difference"]["n"] == 2
    assert table["ours"]["pointing_hit"]["mean"] == pytest.approx(2 / 3)
    assert table["ours"]["pointing_hit"]["difference"]["mean"] == pytest.approx(1 / 3)
    # Pair 1 lacks seconds for "ours": [2 - 1, 4 - 1] = [1, 3].
    assert table["ours"]["seconds"]["difference"]["mean"] == pytest.approx(2.0)
    assert table["ours"]["seconds"]["difference"]["n"] == 2


def test_method_identical_to_reference_has_zero_difference():
    rows = _rows()
    rows["copy"] = [dict(row) for row in rows["gradcam"]]
    table = compare_methods(rows, ["deletion_auc", "pointing_hit"], reference="gradcam")
    for metric in ("deletion_auc", "pointing_hit"):
        assert table["copy"][metric]["difference"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 3}
        assert table["copy"][metric]["mean"] == table["gradcam"][metric]["mean"]


def test_compare_methods_metric_absent_everywhere_gives_none():
    table = compare_methods(_rows(), ["passes"], reference="gradcam")
    assert table["gradcam"]["passes"] == {"mean": None, "low": None, "high": None, "n": 0}
    assert table["ours"]["passes"]["difference"] == {"mean": None, "low": None, "high": None, "n": 0}


def test_compare_methods_unknown_reference():
    with pytest.raises(ValueError, match="reference"):
        compare_methods(_rows(), ["seconds"], reference="missing")


def test_paired_lengths_must_match():
    with pytest.raises(ValueError, match="length"):
        paired_difference([1.0, 2.0], [1.0])


@pytest.mark.parametrize(("argument", "value"), [("level", 0.0), ("level", 1.0), ("level", -0.5), ("level", 1.5),
                                                 ("level", float("nan")), ("resamples", 0), ("resamples", -10)])
def test_bad_level_or_resamples(argument, value):
    for call in (lambda: bootstrap_mean([1.0, 2.0], **{argument: value}),
                 lambda: paired_difference([1.0], [2.0], **{argument: value}),
                 lambda: compare_methods(_rows(), ["seconds"], reference="gradcam", **{argument: value})):
        with pytest.raises(ValueError, match=argument):
            call()
