"""The mask reaches the model through the processor's own geometry (METHOD.md section 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import textured_image
from PIL import Image

from lvlm_heat.adapters import blend, load_adapter
from lvlm_heat.baseline import make_baseline
from lvlm_heat.geometry import ViewWindow, sample_mask, upsample_to_image


def _prepared(folder, image):
    adapter = load_adapter(folder, precision="fp32", device="cpu")
    ids = adapter.encode_answer("the circle is red")
    return adapter, adapter.prepare(image, make_baseline(image), "What color is the circle?", ids)


@pytest.mark.parametrize("fixture", ["tiny_llava", "tiny_llava_pad"])
@pytest.mark.parametrize("size", [(48, 80), (90, 40)])
def test_composite_is_exact_at_the_ends(fixture, size, request):
    image = textured_image(*size)
    adapter, prepared = _prepared(request.getfixturevalue(fixture), image)
    for value, insertion, expected in ((1.0, False, prepared.image), (0.0, False, prepared.baseline),
                                       (1.0, True, prepared.baseline), (0.0, True, prepared.image)):
        weights = adapter.project_mask(torch.full((1, 1, 5, 7), value), prepared)
        composite = blend(prepared, weights, insertion)
        for key in expected:
            assert torch.equal(composite[key][0], expected[key]), (key, value, insertion)


@pytest.mark.parametrize("fixture", ["tiny_llava", "tiny_llava_pad"])
def test_composite_matches_processing_the_pixel_composite(fixture, request):
    """Blending processed I and B with the mapped mask equals processing I*W + B*(1-W)."""
    height, width = 96, 160
    image = textured_image(height, width, seed=3)
    adapter, prepared = _prepared(request.getfixturevalue(fixture), image)
    rng = np.random.default_rng(1)
    cells = torch.from_numpy(rng.integers(0, 2, size=(1, 1, 3, 5)).astype(np.float32))
    weight = upsample_to_image(cells, (height, width))[0, 0].numpy()[..., None]
    pixel_composite = np.asarray(image, np.float32) * weight + np.asarray(prepared_baseline(image), np.float32) * (1 - weight)
    expected = adapter.processor.image_processor(Image.fromarray(pixel_composite.round().astype(np.uint8)),
                                                 return_tensors="pt")["pixel_values"]
    ours = blend(prepared, adapter.project_mask(cells, prepared), insertion=False)["pixel_values"][0]
    error = (ours - expected).abs()
    # Resampling a product is not the product of resamplings: at mask edges the two differ
    # by up to one resampling kernel's worth; elsewhere they agree to rounding.
    assert error.mean() < 0.02
    assert torch.quantile(error.flatten(), 0.95) < 0.1
    # A transposed or shifted mapping would be far off.
    wrong = blend(prepared, adapter.project_mask(cells.flip(-1), prepared), insertion=False)["pixel_values"][0]
    assert (wrong - expected).abs().mean() > 5 * error.mean()


def prepared_baseline(image):
    return make_baseline(image)


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
