"""The fine stage on superpixels (``--refine.stage superpixel``): where its mass goes, what it costs."""

from __future__ import annotations

import dataclasses

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
from lvlm_heat.refine import gate, refine_mask, render, segment_means, superpixel_labels
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
    start = upsample_to_image(coarse.masks, tuple(labels.shape))
    means = render(segment_means(start, labels), labels)  # one value per superpixel: the coarse mask's mean
    assert torch.allclose(pooled.masks, gate(start, means, 0.0), atol=1e-6)
    refined = refine_mask(prepared, coarse, config.optim, RefineConfig(stage="superpixel", iterations=2))
    assert refined.passes == coarse.passes + 2 * 2 * OPTIM.ig_iter
    assert len(refined.history) == len(coarse.history) + 2 and len(refined.curves) == 1


def test_the_pipeline_refines_by_default_and_not_with_stage_none():
    query = Query(red_box_scene(box=RED), "What color is it?", bbox=RED)
    plain = explain_pair(RedBoxAdapter(RED), query, ExplainConfig(optim=OPTIM, refine=RefineConfig(stage="none")))
    refined = explain_pair(RedBoxAdapter(RED), query, ExplainConfig(optim=OPTIM, refine=RefineConfig(iterations=2)))
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


def test_the_map_is_the_coarse_map_gated_by_the_fine_stage():
    config = ExplainConfig(optim=OPTIM)
    prepared, coarse = _coarse(RedBoxAdapter(RED), config)
    pure = refine_mask(prepared, coarse, config.optim, RefineConfig(stage="superpixel", coarse_share=0))
    shared = refine_mask(prepared, coarse, config.optim, RefineConfig(stage="superpixel", coarse_share=0.01))
    start = upsample_to_image(coarse.masks, tuple(pure.masks.shape[-2:]))
    kept = pure.masks == 1  # what the fine stage cleared (the coarse map's halo): nothing of it left without a share
    assert kept.sum() > 100 and (start[kept] < 1).any()
    # with a share, the cleared part keeps 1% of the coarse saliency, ordered as the coarse map orders it
    assert torch.allclose(1 - shared.masks[kept], 0.01 * (1 - start[kept]), atol=1e-6)
    assert shared.masks[kept].unique().numel() > 10
    # where the fine stage removed a superpixel whole, the map is the coarse map itself
    labels = superpixel_labels(prepared, RefineConfig())
    removed = [k for k in range(int(labels.max()) + 1)
               if torch.allclose(1 - pure.masks[0, 0][labels == k], 1 - start[0, 0][labels == k], atol=1e-6)
               and (start[0, 0][labels == k] < 0.5).all()]
    assert removed, "the fine stage removed no superpixel whole"
    assert pointing_hit(_saliency(shared.masks), RED)
    # the peak is the coarse map's own peak unless the fine stage cleared it
    coarse_peak = torch.nonzero(start[0, 0] == start[0, 0].min())[0]
    if pure.masks[0, 0][tuple(coarse_peak)] < 1:
        assert shared.masks[0, 0].min() == pytest.approx(float(gate(start, pure.masks, 0.01)[0, 0].min()))


def test_the_gate_keeps_the_coarse_peak_where_the_refined_mask_alone_ties_two_objects():
    """The failure the gate removes: the fine stage removed a superpixel on another object whole and the coarse
    peak's own superpixel nearly whole; the refined mask alone peaks on the other object, the gated map does not."""
    coarse = torch.tensor([0.1, 0.6, 1.0])  # pixels: on the object (coarse peak), on another object, background
    refined = torch.tensor([0.1, 0.0, 1.0])
    saliency = 1 - gate(coarse, refined, 0.01)
    assert int(saliency.argmax()) == 0 and int((1 - refined).argmax()) == 1
    assert saliency[2] == 0  # the background was clear in the coarse map and stays so


def test_the_fine_stage_draws_its_own_noise_and_none_by_default():
    """``refine.noise`` (0 by default) is the fine stage's noise: the coarse stage's ``optim.noise`` does not reach
    it, so with none the stage is a deterministic function of the coarse mask; with some, its scores move."""
    config = ExplainConfig(optim=OPTIM)
    prepared, coarse = _coarse(RedBoxAdapter(RED), config)
    quiet = dataclasses.replace(OPTIM, noise=0.0)

    def refined(optim: OptimConfig, noise: float) -> tuple[torch.Tensor, list[float]]:
        result = refine_mask(prepared, coarse, optim, RefineConfig(iterations=2, noise=noise))
        return result.masks, [step["refine/deletion"] for step in result.history[-2:]]

    # equal up to the float summation order, which a loaded machine's thread pool may change from call to call
    assert RefineConfig().noise == 0
    plain, again = refined(quiet, 0.0), refined(OPTIM, 0.0)
    assert torch.allclose(again[0], plain[0], atol=1e-5) and again[1] == pytest.approx(plain[1], rel=1e-5)
    noisy = refined(quiet, 0.5)
    assert all(abs(a - b) > 1e-3 * abs(b) for a, b in zip(noisy[1], plain[1])), (noisy[1], plain[1])
    assert refined(OPTIM, 0.5)[1] == pytest.approx(noisy[1], rel=1e-5)  # seeded: the same draws again


@pytest.mark.parametrize("field, value", [("stage", "fine"), ("iterations", -1), ("segments", 1), ("step_size", 0.0),
                                          ("l1", -1.0), ("coarse_share", 1.5), ("noise", -0.1)])
def test_refine_settings_are_checked(field, value):
    with pytest.raises(ValueError, match="refine"):
        RefineConfig(**{field: value})


def test_a_record_from_before_the_fine_stage_matches_stage_none_and_not_the_default():
    """A record written before the stage existed holds the optimised mask: a resume with ``--refine.stage none``
    keeps it, a resume at the defaults (which refine) explains the pair again."""
    from dataclasses import asdict

    from lvlm_heat.config import result_settings

    off = asdict(ExplainConfig(refine=RefineConfig(stage="none")))
    before = {key: value for key, value in off.items() if key != "refine"}
    assert result_settings(before) == result_settings(off)
    assert result_settings(before) != result_settings(asdict(ExplainConfig()))
