"""The default baseline hides objects at any image size: its blur scales with the image."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image, ImageDraw

from lvlm_heat.baseline import blur_kernel_size, make_baseline, relative_kernel_size
from lvlm_heat.demo import DEMO_PAIRS


def _scene(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (128, 128, 128))
    ImageDraw.Draw(image).rectangle([0.6 * width, 0.3 * height, 0.7 * width, 0.45 * height], fill=(230, 30, 30))
    return image


def test_kernels():
    assert [relative_kernel_size(h, w) for h, w in ((64, 64), (336, 336), (500, 1000), (4000, 6000))] == \
        [101, 269, 801, 4801]
    assert [blur_kernel_size(w) for w in (336, 1000, 6000)] == [101, 301, 501]  # the paper's table, kept as an option


def test_an_upscaled_image_gets_the_upscaled_baseline():
    small = _scene(400, 267)
    big = small.resize((6000, 4000), Image.Resampling.NEAREST)
    reference = np.asarray(make_baseline(small), np.float32)
    scaled_down = np.asarray(make_baseline(big).resize(small.size, Image.Resampling.BOX), np.float32)
    assert np.abs(scaled_down - reference).mean() < 0.5  # grey levels of 255
    # the object is as faint in the 24-megapixel baseline as in the small one
    assert scaled_down[..., 0].max() - 128 <= reference[..., 0].max() - 128 + 1


def test_the_demo_model_still_needs_the_object_in_a_24_megapixel_photo():
    """The paper's kernel table leaves the object recognisable at this size (the answer word's LLR
    falls from 8.08 to 0.00, measured); the scaled blur keeps the word image-dependent."""
    from lvlm_heat import Explainer

    adapter = Explainer("demo").adapter
    pair = json.loads(DEMO_PAIRS.read_text().splitlines()[1])
    image = Image.open(DEMO_PAIRS.parent / pair["image"]).convert("RGB")
    answer = adapter.encode_answer("the green object is a circle")
    llrs = []
    for side in (128, 4899):
        resized = image.resize((side, side), Image.Resampling.BICUBIC)
        prepared = adapter.prepare(resized, make_baseline(resized), pair["question"], answer)
        with torch.no_grad():
            both = {k: torch.stack([prepared.image[k], prepared.baseline[k]]) for k in prepared.image}
            log_probs = adapter.answer_log_probs(prepared, both)
        llrs.append(float((log_probs[0] - log_probs[1]).max()))
    assert llrs[0] > 7 and llrs[1] > 7, llrs


def test_median_baseline_is_the_colour_around_a_large_object():
    """A blur keeps an object that fills much of the image as a blob of its colour; the median fill takes the
    colour of the rest, so where the object was nothing of it is left."""
    image = Image.new("RGB", (128, 128), (200, 190, 180))
    ImageDraw.Draw(image).ellipse([20, 20, 110, 110], fill=(230, 30, 30))  # about 39% of the image
    median = np.asarray(make_baseline(image, "median"))
    assert (median == (200, 190, 180)).all()
    blurred = np.asarray(make_baseline(image), np.float32)
    assert blurred[64, 64, 0] - blurred[64, 64, 1] > 40  # the blur's centre is still tinted red
