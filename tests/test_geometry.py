"""The mask reaches the model through each processor's own geometry (docs/method.md, 'Mask and composites').

Every family is checked on a non-square image whose best-fit grid (for tiled models) is
not square: the composite is exact at mask 1 and 0 on every pixel tensor, and matches
processing the pixel-space composite for a blocky mask (this catches transposed, shifted
or dropped tiles).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import textured_image
from PIL import Image

from lvlm_heat.adapters import blend, load_adapter
from lvlm_heat.baseline import make_baseline
from lvlm_heat.geometry import ViewWindow, sample_mask, upsample_to_image

FAMILIES = ["tiny_llava", "tiny_llava_pad", "tiny_llava_next", "tiny_llava_onevision", "tiny_qwen2_vl", "tiny_qwen2_5_vl",
            "tiny_deepseek_vl_hybrid"]


def _prepared(folder, image):
    adapter = load_adapter(folder, precision="fp32", device="cpu")
    ids = adapter.encode_answer("the circle is red")
    return adapter, adapter.prepare(image, make_baseline(image), "What color is the circle?", ids)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [(30, 70), (90, 40), (40, 40)])
def test_composite_is_exact_at_the_ends(family, size, request):
    image = textured_image(*size)
    adapter, prepared = _prepared(request.getfixturevalue(family), image)
    for value, insertion, expected in ((1.0, False, prepared.image), (0.0, False, prepared.baseline),
                                       (1.0, True, prepared.baseline), (0.0, True, prepared.image)):
        weights = adapter.project_mask(torch.full((1, 1, 5, 7), value), prepared)
        composite = blend(prepared, weights, insertion)
        assert set(composite) == set(expected)
        for key in expected:
            assert torch.equal(composite[key][0], expected[key]), (key, value, insertion)


@pytest.mark.parametrize("family", FAMILIES)
def test_composite_matches_processing_the_pixel_composite(family, request):
    """Blending processed I and B with the mapped mask equals processing I*W + B*(1-W)."""
    height, width = 60, 140  # a 2 x 3 grid for the tiled models
    image = textured_image(height, width, seed=3)
    adapter, prepared = _prepared(request.getfixturevalue(family), image)
    rng = np.random.default_rng(1)
    cells = torch.from_numpy(rng.integers(0, 2, size=(1, 1, 3, 7)).astype(np.float32))
    weight = upsample_to_image(cells, (height, width))[0, 0].numpy()[..., None]
    baseline = np.asarray(make_baseline(image), np.float32)
    pixel_composite = np.asarray(image, np.float32) * weight + baseline * (1 - weight)
    processed = adapter.processor.image_processor(Image.fromarray(pixel_composite.round().astype(np.uint8)),
                                                  return_tensors="pt")
    for key in prepared.image:
        expected = processed[key]
        ours = blend(prepared, adapter.project_mask(cells, prepared), insertion=False)[key][0]
        error = (ours - expected).abs()
        # Resampling a product is not the product of resamplings: at mask edges the two differ
        # by up to one resampling kernel; elsewhere they agree to rounding.
        assert error.mean() < 0.03, error.mean()
        assert torch.quantile(error.flatten(), 0.9) < 0.1
        # The same mask mirrored (a transposed or flipped mapping) is far off.
        wrong = blend(prepared, adapter.project_mask(cells.flip(-1), prepared), insertion=False)[key][0]
        assert (wrong - expected).abs().mean() > 5 * error.mean()


@pytest.mark.parametrize("family", ["tiny_llava_next", "tiny_llava_onevision"])
def test_every_tile_reaches_the_model(family, request):
    """A mask cell seen only by one high-resolution tile (and the base view) moves the answer."""
    image = textured_image(60, 140, seed=5)
    adapter, prepared = _prepared(request.getfixturevalue(family), image)
    windows = prepared.geometry
    assert len(windows) == 7  # base + 2 x 3 tiles
    mask = torch.ones(1, 1, 6, 14, requires_grad=True)
    pixels = blend(prepared, adapter.project_mask(mask, prepared), insertion=False)
    pixels["pixel_values"].retain_grad()
    adapter.answer_log_probs(prepared, pixels).sum().backward()
    per_view = pixels["pixel_values"].grad[0, 0].abs().flatten(1).sum(-1)
    assert (per_view > 0).all(), per_view  # every view, each tile included, feeds the answer
    assert mask.grad.abs().gt(0).all()


def test_both_encoders_reach_the_model(tiny_deepseek_vl_hybrid):
    image = textured_image(60, 140, seed=5)
    adapter, prepared = _prepared(tiny_deepseek_vl_hybrid, image)
    mask = torch.ones(1, 1, 6, 14, requires_grad=True)
    pixels = blend(prepared, adapter.project_mask(mask, prepared), insertion=False)
    assert set(pixels) == {"pixel_values", "high_res_pixel_values"}
    for value in pixels.values():
        value.retain_grad()
    adapter.answer_log_probs(prepared, pixels).sum().backward()
    for key, value in pixels.items():
        assert value.grad.abs().sum() > 0, key
    assert mask.grad.abs().gt(0).all()


def test_window_composition_maps_pixel_centres():
    window = ViewWindow.full(100, 200).resize(50, 100).crop(0, 25, 50, 50)
    assert (window.top, window.left, window.height, window.width) == (0.0, 50.0, 100.0, 100.0)
    padded = ViewWindow.full(40, 80).pad_to_square()
    assert (padded.top, padded.height, padded.rows) == (-20.0, 80.0, 80)


def test_sample_mask_reads_the_right_cells():
    cells = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    window = ViewWindow.full(10, 10).crop(5, 0, 5, 5)  # bottom-left quadrant
    sampled = sample_mask(cells, window, (10, 10))
    assert sampled.shape == (1, 1, 5, 5)
    assert sampled[0, 0, -1, 0] == pytest.approx(2.0)
    assert torch.equal(sample_mask(torch.ones(1, 1, 3, 3), window, (10, 10)), torch.ones(1, 1, 5, 5))
