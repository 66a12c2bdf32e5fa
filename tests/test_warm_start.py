"""The mask's warm start from the evidence sweep: where it dips, what it costs, per word."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy import ColourWordsAdapter, RedBoxAdapter, red_box_scene

from lvlm_heat.config import ExplainConfig, OptimConfig, SelectionConfig, WarmStartConfig
from lvlm_heat.data import Query
from lvlm_heat.geometry import upsample_to_image
from lvlm_heat.prepare import prepare
from lvlm_heat.scorer import sweep_masks
from lvlm_heat.warm_start import initial_mask, region_map

RED, GREEN = (36, 8, 56, 28), (6, 40, 24, 58)


def _start(adapter, box, config: ExplainConfig):
    """The pair's prepared state and the mask's start, as the pipeline computes them."""
    prepared = prepare(adapter, Query(red_box_scene(box=box), "q"), config)
    return prepared, initial_mask(prepared, config.warm_start)


def _dip(start: torch.Tensor, size: int = 64) -> np.ndarray:
    return (1 - upsample_to_image(start[None].float(), (size, size)))[0, 0].numpy()


def _config(warm: float, rule: str = "evidence", windows: int = 7) -> ExplainConfig:
    optim = OptimConfig(mask_size=16, iterations=2, ig_iter=4, curve_steps=8)
    return ExplainConfig(optim=optim, select=SelectionConfig(rule=rule),
                         warm_start=WarmStartConfig(depth=warm, windows=windows))


def test_the_mask_starts_dipped_on_the_evidence():
    prepared, start = _start(RedBoxAdapter(RED), RED, _config(0.5))
    assert prepared.selected.any()
    assert start.shape == (1, 1, 16, 16) and 0.5 - 1e-6 <= float(start.min()) and float(start.max()) == 1.0
    dip = _dip(start[0])
    left, top, right, bottom = RED
    assert dip[top:bottom, left:right].mean() > 0.1  # the red square: the regions over it matter
    row, col = np.unravel_index(dip.argmax(), dip.shape)
    assert left <= col < right and top <= row < bottom
    assert dip[40:58, 6:24].max() < 0.02  # the green square: no region over it matters


SMALL, LARGE = (34, 18, 46, 30), (30, 4, 58, 32)  # one fine region holds SMALL whole; none holds LARGE


@pytest.mark.parametrize(
    ("rule", "box", "extra"),
    [("evidence", SMALL, 0), ("llr", SMALL, 0), ("evidence", LARGE, 0), ("llr", LARGE, 3 * 3)],
)
def test_warm_start_costs_its_sweeps_and_nothing_else(rule, box, extra):
    """The fine sweep always; the coarse one only where no fine region costs a nat, and then
    for free under the evidence rule, which ran it already to select the tokens."""
    prepared, start = _start(RedBoxAdapter(box), box, _config(0.0, rule=rule, windows=4))
    assert start is None  # off: the mask starts at 1, and no pass is run
    before = prepared.scorer.passes
    assert initial_mask(prepared, WarmStartConfig(windows=4)) is not None
    assert prepared.scorer.passes - before == 4 * 4 + extra  # one pass per region of the warm start's sweeps


@pytest.mark.parametrize("rule", ["evidence", "llr"])
def test_an_object_larger_than_the_fine_regions_is_placed_by_the_coarse_sweep(rule):
    """No region of the fine sweep (a quarter of the side) holds the 28-px square whole, so none
    removes its evidence; the start then comes from the half-side regions, still on the square."""
    _, start = _start(RedBoxAdapter(LARGE), LARGE, _config(0.5, rule=rule, windows=4))
    dip = _dip(start[0])
    left, top, right, bottom = LARGE
    rows, cols = np.indices(dip.shape)
    row, col = (rows * dip).sum() / dip.sum(), (cols * dip).sum() / dip.sum()  # the dip's centre: on the square
    assert left <= col < right and top <= row < bottom
    inside = np.zeros(dip.shape, dtype=bool)
    inside[top:bottom, left:right] = True
    assert dip[inside].mean() > 0.1 and dip[inside].mean() > 3 * dip[~inside].mean()
    assert dip[40:58, 6:24].max() < 0.02  # the green square


def test_without_the_fallback_the_coarse_sweep_never_runs():
    """The coarse sweep is an explicit option: off, only the fine sweep (which finds little) places the start."""
    config = _config(0.5, rule="llr", windows=4)
    _, with_fallback = _start(RedBoxAdapter(LARGE), LARGE, config)
    config.warm_start.fallback = False
    prepared, start = _start(RedBoxAdapter(LARGE), LARGE, config)
    assert not prepared.scorer.has_swept(3, 0.5)
    assert float((1 - start).max()) < float((1 - with_fallback).max())


def test_the_coarse_sweep_marks_the_whole_object_not_its_regions_corner():
    """Only the bottom-right half-side region holds this 24-px square whole. The image's corner lies
    in that region alone, the square also in regions that change nothing: a mean over the regions
    would dip the corner four times deeper than the square's top-left; the start must not."""
    box = (34, 34, 58, 58)
    _, start = _start(RedBoxAdapter(box), box, _config(0.5, windows=4))
    dip = _dip(start[0])
    left, top, right, bottom = box
    assert dip.max() > 0.4
    assert dip[top + 2 : bottom - 2, left + 2 : right - 2].min() > 0.8 * dip.max()
    assert dip[40:58, 6:24].max() < 0.02  # the green square


def test_each_word_starts_on_its_own_object():
    config = _config(1.0, rule="all")
    config.maps = "per_word"
    _, start = _start(ColourWordsAdapter(RED, GREEN), RED, config)
    assert start.shape[0] == 3  # the joint mask, then "red" and "green"
    red, green = _dip(start[1]), _dip(start[2])
    for dip, (left, top, right, bottom), other in ((red, RED, GREEN), (green, GREEN, RED)):
        assert dip[top:bottom, left:right].mean() > 2 * dip[other[1] : other[3], other[0] : other[2]].mean()


def test_a_sweep_that_changes_nothing_marks_nothing():
    keep = sweep_masks((8, 8), 3)
    shape, trust = region_map(keep, torch.full((9,), 0.02), 1.0)
    assert float(shape.abs().max()) == 0.0 and trust == 0.0  # all regions alike
    shape, trust = region_map(keep, torch.tensor([0.1] + [0.0] * 8), 1.0)
    assert float(shape.max()) == 1.0 and trust == pytest.approx(0.1)  # a tenth of a nat: a tenth of the trust


@pytest.mark.parametrize("field", ["depth", "side", "fallback_side"])
def test_warm_start_fractions_are_checked(field):
    with pytest.raises(ValueError, match=f"warm_start.{field}"):
        WarmStartConfig(**{field: 1.5})
