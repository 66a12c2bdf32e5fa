"""Every supported family, from a tiny checkpoint saved with plain ``save_pretrained``, through the
measured geometry (docs/method.md, 'Mask and composites').

For each family: the registry picks the expected adapter; the measured composite is exact at mask
1 and 0 for square, wide and tall images; it matches processing the pixel-space composite for a
blocky mask; where a hand-written adapter exists, its geometry and the measured one agree to the
half pixel nearest-neighbour measurement allows; the answer scored with teacher forcing is the
greedy answer; ``train.py`` runs end to end.
"""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
import torch
from conftest import textured_image

from lvlm_heat.adapters import (
    AnyResAdapter,
    DeepseekVLHybridAdapter,
    LlavaAdapter,
    MeasuredAdapter,
    PaliGemmaAdapter,
    QwenVLAdapter,
    blend,
    load_adapter,
)
from lvlm_heat.baseline import make_baseline
from lvlm_heat.cli import main
from lvlm_heat.config import ExplainConfig, GradientConfig, OcclusionConfig, OptimConfig, SelectionConfig
from lvlm_heat.data import Query
from lvlm_heat.geometry import upsample_to_image
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.reporting.outputs import read_record

HAND_WRITTEN = {"tiny_llava": LlavaAdapter, "tiny_llava_pad": LlavaAdapter, "tiny_llava_next": AnyResAdapter,
                "tiny_llava_onevision": AnyResAdapter, "tiny_qwen2_vl": QwenVLAdapter, "tiny_qwen2_5_vl": QwenVLAdapter,
                "tiny_deepseek_vl_hybrid": DeepseekVLHybridAdapter}
MEASURED_ONLY = ["tiny_gemma3", "tiny_idefics3", "tiny_smolvlm", "tiny_qwen3_vl", "tiny_internvl", "tiny_mistral3",
                 "tiny_pixtral", "tiny_paligemma",  # tiny_pixtral: model type llava, but Pixtral's processor
                 "tiny_vipllava", "tiny_aya_vision", "tiny_deepseek_vl", "tiny_idefics2"]  # further families
FAMILIES = [*HAND_WRITTEN, *MEASURED_ONLY]
SIZES = {"square": (40, 40), "wide": (30, 70), "tall": (90, 40)}
QUESTION, ANSWER = "What color is the circle?", "the circle is red"


MEASURED_FAMILY = {"tiny_paligemma": PaliGemmaAdapter}  # measured geometry, the family's own prompt


@cache
def _adapters(folder: str) -> tuple:
    """The registered adapter and a measured one sharing its model and processor (loaded once per folder)."""
    registered = load_adapter(folder, precision="fp32", device="cpu")
    if isinstance(registered, MeasuredAdapter):
        return registered, registered
    return registered, MeasuredAdapter(registered.model, registered.processor, folder)


def _measured(request, family: str) -> MeasuredAdapter:
    return _adapters(request.getfixturevalue(family))[1]


def _prepare(adapter, image):
    return adapter.prepare(image, make_baseline(image), QUESTION, adapter.encode_answer(ANSWER))


@pytest.mark.parametrize("family", FAMILIES)
def test_registry_picks_the_family_adapter_or_the_measured_one(family, request):
    registered, _ = _adapters(request.getfixturevalue(family))
    assert type(registered) is {**HAND_WRITTEN, **MEASURED_FAMILY}.get(family, MeasuredAdapter)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("family", FAMILIES)
def test_measured_composite_is_exact_at_the_ends(family, shape, request):
    adapter = _measured(request, family)
    prepared = _prepare(adapter, textured_image(*SIZES[shape], seed=2))
    for value, insertion, expected in ((1.0, False, prepared.image), (0.0, False, prepared.baseline),
                                       (1.0, True, prepared.baseline), (0.0, True, prepared.image)):
        composite = blend(prepared, adapter.project_mask(torch.full((1, 1, 5, 7), value), prepared), insertion)
        assert set(composite) == set(expected)
        for key in expected:
            assert torch.equal(composite[key][0], expected[key]), (key, value, insertion)
    guide, window = prepared.guide
    assert guide.dim() == 4 and guide.shape[-2:] == (window.rows, window.cols)


@pytest.mark.parametrize("family", FAMILIES)
def test_measured_composite_matches_processing_the_pixel_composite(family, request):
    """Blending processed I and B with the measured mask equals processing I*W + B*(1-W)."""
    adapter = _measured(request, family)
    height, width = 60, 140
    image = textured_image(height, width, seed=3)
    prepared = _prepare(adapter, image)
    cells = torch.from_numpy(np.random.default_rng(1).integers(0, 2, size=(1, 1, 3, 7)).astype(np.float32))
    weight = upsample_to_image(cells, (height, width))[0, 0].numpy()[..., None]
    baseline = np.asarray(make_baseline(image), np.float32)
    pixel_composite = np.asarray(image, np.float32) * weight + baseline * (1 - weight)
    from PIL import Image

    composite_image = Image.fromarray(pixel_composite.round().astype(np.uint8))
    processed = adapter._inputs(composite_image, adapter.chat_prompt(QUESTION))
    ours = blend(prepared, adapter.project_mask(cells, prepared), insertion=False)
    wrong = blend(prepared, adapter.project_mask(cells.flip(-1), prepared), insertion=False)
    for key in prepared.image:
        error = (ours[key][0] - processed[key]).abs()
        # Resampling a product is not the product of resamplings: at mask edges the two differ
        # by up to one resampling kernel; elsewhere they agree to rounding.
        assert error.mean() < 0.03, (key, error.mean())
        assert torch.quantile(error.flatten().float(), 0.9) < 0.1, key
        assert (wrong[key][0] - processed[key]).abs().mean() > 5 * error.mean(), key  # a mirrored mapping is far off


def _coordinate_masks(image_size: tuple[int, int], cells: tuple[int, int] = (10, 12)) -> torch.Tensor:
    """Two masks whose bilinear reading is the row and the column itself (between the first and last cell centres)."""
    (height, width), (rows, cols) = image_size, cells
    ys = (torch.arange(rows, dtype=torch.float64) + 0.5) * height / rows
    xs = (torch.arange(cols, dtype=torch.float64) + 0.5) * width / cols
    return torch.stack([ys[:, None].expand(rows, cols), xs[None, :].expand(rows, cols)])[:, None]


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("family", list(HAND_WRITTEN))
def test_measured_geometry_equals_the_hand_written_one(family, shape, request):
    """Each element's source point, measured and hand-written, agree to within half a source pixel."""
    hand, measured = _adapters(request.getfixturevalue(family))
    image = textured_image(*SIZES[shape], seed=4)
    by_hand, by_probe = _prepare(hand, image), _prepare(measured, image)
    masks = _coordinate_masks(SIZES[shape]).float()
    expected, found = hand.project_mask(masks, by_hand), measured.project_mask(masks, by_probe)
    for key, pixels in by_hand.image.items():
        gap = (found[key] * torch.ones_like(pixels) - expected[key] * torch.ones_like(pixels)).abs()
        assert gap.max() <= 0.5, (key, gap.max())


@pytest.mark.parametrize("family", FAMILIES)
def test_teacher_forcing_scores_the_greedy_answer(family, request):
    """The answer tokens' scores come from the same inputs generate() used (token types included)."""
    adapter = _measured(request, family)
    image = textured_image(40, 60, seed=6)
    answer = adapter.generate(image, QUESTION, max_new_tokens=4)
    prepared = adapter.prepare(image, make_baseline(image), QUESTION, answer)
    inputs = adapter.batch_inputs(prepared, {k: v[None] for k, v in prepared.image.items()}, 1)
    with torch.no_grad():
        logits = adapter.model(**inputs, use_cache=False).logits[0, -answer.numel():]
    assert torch.equal(logits.argmax(-1), answer.to(logits.device))


@pytest.mark.parametrize("family", MEASURED_ONLY)
def test_every_mask_cell_and_batch_reaches_the_model(family, request):
    """Gradient reaches every mask cell the processor shows, and two composites scored together score
    as each alone."""
    adapter = _measured(request, family)
    prepared = _prepare(adapter, textured_image(60, 140, seed=5))
    mask = torch.ones(2, 1, 3, 7)
    mask[1, :, 1:, 2:5] = 0.2
    mask.requires_grad_(True)
    together = adapter.answer_log_probs(prepared, blend(prepared, adapter.project_mask(mask, prepared), False))
    together.sum().backward()
    points = prepared.geometry.points
    inside = (points[:, 0] >= 0) & (points[:, 0] < 60) & (points[:, 1] >= 0) & (points[:, 1] < 140)
    shown = (points[inside, 0] // 20).long() * 7 + (points[inside, 1] // 20).long()  # cells of 20 x 20 pixels
    assert mask.grad[0, 0].flatten()[shown.unique()].abs().gt(0).all()  # a centre crop hides the side cells
    alone = [adapter.answer_log_probs(prepared, blend(prepared, adapter.project_mask(m[None], prepared), False))
             for m in mask.detach()]
    torch.testing.assert_close(together.detach(), torch.cat(alone), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", MEASURED_ONLY)
def test_train_py_runs_every_measured_family(family, request, tmp_path):
    path = tmp_path / "street.png"
    textured_image(45, 70).save(path)
    out = tmp_path / "run"
    main(["--model", request.getfixturevalue(family), "--image", str(path), "--question", QUESTION,
          "--answer", ANSWER, "--output_dir", str(out), "--select.rule", "all", "--progress", "false",
          "--optim.iterations", "2", "--optim.ig_iter", "2", "--optim.curve_steps", "4", "--optim.mask_size", "6"])
    record = json.loads((out / "street" / "result.json").read_text())
    assert record["status"] == "explained" and record["deletion_auc"] is not None
    assert read_record(out / "street").saliency.shape == (45, 70)
    assert record["history"][0]["mask_mean"] < 1.0  # the mask moved


@pytest.mark.parametrize("family", FAMILIES)
def test_the_answer_is_scored_without_the_image_where_the_model_allows(family, request):
    adapter = _adapters(request.getfixturevalue(family))[0]
    ids = adapter.encode_answer(ANSWER)
    scores = adapter.text_only_log_probs(QUESTION, ids)
    if family == "tiny_paligemma":  # its processor needs an image
        assert scores is None
        return
    assert scores is not None and scores.shape == ids.shape
    assert torch.isfinite(scores).all() and (scores <= 0).all()
    prepared = _prepare(adapter, textured_image(40, 40))
    with_image = adapter.answer_log_probs(prepared, {k: v[None] for k, v in prepared.image.items()})[0]
    assert not torch.allclose(scores, with_image.cpu(), atol=1e-4)  # another context: the image is not in it


@pytest.mark.parametrize("family", FAMILIES)
def test_the_other_explainers_run_through_every_family(family, request):
    """Occlusion composites and the gradient reach the model through the family's geometry: every map varies
    over the image, and the gradient is not zero."""
    adapter = _adapters(request.getfixturevalue(family))[0]
    config = ExplainConfig(method="superpixel,gradient", select=SelectionConfig(rule="all"),
                           occlusion=OcclusionConfig(segments=6, superpixel_fill="baseline"),
                           gradient=GradientConfig(steps=2, cells=8), optim=OptimConfig(curve_steps=4, mask_size=6))
    record = explain_pair(adapter, Query(textured_image(30, 50), QUESTION, answer=ANSWER), config)
    assert [m.method for m in record.methods] == ["superpixel", "gradient"]
    for found in record.methods:
        assert found.saliency.shape == (30, 50) and np.isfinite(found.saliency).all()
        assert found.saliency.std() > 0 and np.isfinite([found.deletion.auc, found.insertion.auc]).all()
    assert np.abs(record.method_map("gradient").grid).max() > 0
