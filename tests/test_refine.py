"""The fine stage on superpixels (``--refine.stage superpixel``): where its mass goes, what it costs."""

from __future__ import annotations

import pytest
import torch
from toy import ColourWordsAdapter, RedBoxAdapter, red_box_scene

from lvlm_heat.config import ExplainConfig, OptimConfig, RefineConfig
from lvlm_heat.data import Query
from lvlm_heat.explainer import optimise_mask
from lvlm_heat.geometry import grid_to_image, upsample_to_image
from lvlm_heat.metrics.functional import box_mass, pointing_hit
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.prepare import prepare
from lvlm_heat.refine import refine_mask, render, segment_means, superpixel_labels
from lvlm_heat.warm_start import initial_mask

RED, GREEN = (36, 8, 56, 28), (6, 40, 24, 58)
OPTIM = OptimConfig(mask_size=16, iterations=3, ig_iter=4, curve_steps=8)


def _saliency(masks: torch.Tensor, group: int = 0) -> torch.Tensor:
    return torch.from_numpy(grid_to_image((1 - masks[group, 0]).numpy(), (64, 64)))


def _coarse(adapter, config: ExplainConfig):
    prepared = prepare(adapter, Query(red_box_scene(box=RED), "q"), config)
    return prepared, optimise_mask(prepared, config.optim, initial_mask(prepared, config.warm_start))


def test_segment_means_and_render_round_trip():
    labels = torch.tensor([[0, 0, 1], [2, 1, 1]])
    masks = torch.tensor([[[[0.2, 0.4, 1.0], [0.5, 0.0, 0.5]]]])
    values = segment_means(masks, labels)
    assert torch.allclose(values, torch.tensor([[0.3, 0.5, 0.5]]))
    assert torch.allclose(render(values, labels), torch.tensor([[[[0.3, 0.3, 0.5], [0.5, 0.5, 0.5]]]]))


def test_the_refined_map_puts_more_of_its_mass_in_the_box_than_the_coarse_one():
    config = ExplainConfig(optim=OPTIM)
    prepared, coarse = _coarse(RedBoxAdapter(RED), config)
    refined = refine_mask(prepared, coarse, config.optim, RefineConfig(stage="superpixel", iterations=3))
    before, after = box_mass(_saliency(coarse.masks), RED), box_mass(_saliency(refined.masks), RED)
    assert pointing_hit(_saliency(refined.masks), RED)
    assert after > before + 0.1 and after > 0.6, (before, after)


def test_the_box_mass_does_not_fall_from_one_iteration_to_the_next():
    # momentum on the unclamped iterate once pulled background values held at 1 back below it every other step
    config = ExplainConfig(optim=OPTIM)
    prepared, coarse = _coarse(RedBoxAdapter(RED), config)
    masses = [box_mass(_saliency(refine_mask(prepared, coarse, config.optim, RefineConfig(
        stage="superpixel", iterations=k)).masks), RED) for k in (1, 2, 3, 4)]
    assert all(later >= earlier - 0.01 for earlier, later in zip(masses, masses[1:])), masses
    assert masses[-1] > 0.95


def test_the_fine_stage_costs_two_games_per_iteration_and_pooling_costs_nothing():
    config = ExplainConfig(optim=OPTIM)
    prepared, coarse = _coarse(RedBoxAdapter(RED), config)
    pooled = refine_mask(prepared, coarse, config.optim, RefineConfig(stage="superpixel", iterations=0,
                                                                      coarse_share=0))
    assert pooled.passes == coarse.passes and len(pooled.history) == len(coarse.history)
    labels = superpixel_labels(prepared, RefineConfig())
    assert pooled.masks.shape == (1, 1, *labels.shape)
    for k in range(int(labels.max()) + 1):  # one value per superpixel
        assert pooled.masks[0, 0][labels == k].unique().numel() == 1
    refined = refine_mask(prepared, coarse, config.optim, RefineConfig(stage="superpixel", iterations=2))
    assert refined.passes == coarse.passes + 2 * 2 * OPTIM.ig_iter
    assert len(refined.history) == len(coarse.history) + 2 and len(refined.curves) == 1


def test_the_pipeline_refines_only_when_asked():
    query = Query(red_box_scene(box=RED), "What color is it?", bbox=RED)
    plain = explain_pair(RedBoxAdapter(RED), query, ExplainConfig(optim=OPTIM))
    refined = explain_pair(RedBoxAdapter(RED), query, ExplainConfig(optim=OPTIM, refine=RefineConfig(
        stage="superpixel", iterations=2)))
    assert plain.methods[0].grid.shape == (16, 16) and refined.methods[0].grid.shape == (64, 64)
    assert refined.saliency.shape == (64, 64) and refined.pointing_hit
    assert refined.box_mass > plain.box_mass
    assert refined.methods[0].passes == plain.methods[0].passes + 2 * 2 * OPTIM.ig_iter
    assert 0 <= refined.deletion_auc < refined.insertion_auc


def test_each_word_is_refined_on_its_own_tokens():
    config = ExplainConfig(maps="per_word", optim=OPTIM, refine=RefineConfig(stage="superpixel"))
    record = explain_pair(ColourWordsAdapter(RED, GREEN), Query(red_box_scene(box=RED), "q"), config)
    words = {w.word.strip(): torch.from_numpy(w.saliency) for w in record.words}
    assert pointing_hit(words["red"], RED) and pointing_hit(words["green"], GREEN)


def test_a_share_of_the_coarse_mask_orders_what_the_fine_stage_leaves_tied():
    config = ExplainConfig(optim=OPTIM)
    prepared, coarse = _coarse(RedBoxAdapter(RED), config)
    pure = refine_mask(prepared, coarse, config.optim, RefineConfig(stage="superpixel", coarse_share=0))
    mixed = refine_mask(prepared, coarse, config.optim, RefineConfig(stage="superpixel", coarse_share=0.01))
    start = upsample_to_image(coarse.masks, tuple(pure.masks.shape[-2:]))
    assert torch.allclose(mixed.masks, 0.99 * pure.masks + 0.01 * start, atol=1e-6)
    cleared = pure.masks == 1  # the background the fine stage cleared: one tie in the pure map, ordered in the mixed
    assert cleared.sum() > 100 and mixed.masks[cleared].unique().numel() > 10


@pytest.mark.parametrize("field, value", [("stage", "fine"), ("iterations", -1), ("segments", 1), ("step_size", 0.0),
                                          ("l1", -1.0), ("coarse_share", 1.5)])
def test_refine_settings_are_checked(field, value):
    with pytest.raises(ValueError, match="refine"):
        RefineConfig(**{field: value})


def test_a_record_from_before_the_fine_stage_still_matches_while_it_is_off():
    from dataclasses import asdict

    from lvlm_heat.config import result_settings

    today = asdict(ExplainConfig())
    before = {key: value for key, value in today.items() if key != "refine"}
    assert result_settings(before) == result_settings(today)
    refined = asdict(ExplainConfig(refine=RefineConfig(stage="superpixel")))
    assert result_settings(refined) != result_settings(today)
