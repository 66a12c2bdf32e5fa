"""How the geometry is measured, and loading from every layout a checkpoint can arrive in.

The probes decode every element's source pixel (images over 256 pixels included), mark padding,
refuse a processor that does not copy pixels, measure once per image size and say when images do
not batch by concatenation. Checkpoints load from plain ``save_pretrained`` folders, legacy files
and the project's earlier layout; one that cannot work says why in one line.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import QWEN_CHAT, textured_image

from lvlm_heat.adapters import MeasuredAdapter, blend, load_adapter
from lvlm_heat.adapters.measured import PADDING, batching, measure_sources, raw_processor
from lvlm_heat.adapters.processors import load_processor
from lvlm_heat.baseline import make_baseline
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.geometry import ViewWindow, fill_nearest, fit_lines, sample_mask, sample_mask_at


def _measured(folder: str) -> MeasuredAdapter:
    adapter = load_adapter(folder, precision="fp32", device="cpu")
    return MeasuredAdapter(adapter.model, adapter.processor, folder)


def test_sample_mask_at_reads_what_sample_mask_reads():
    mask = torch.rand(2, 1, 3, 5)
    window = ViewWindow.full(30, 50).resize(7, 9).crop(-1, 2, 5, 6)
    ys = window.top + (torch.arange(window.rows, dtype=torch.float64) + 0.5) * window.height / window.rows
    xs = window.left + (torch.arange(window.cols, dtype=torch.float64) + 0.5) * window.width / window.cols
    rows, cols = torch.meshgrid(ys, xs, indexing="ij")
    read = sample_mask_at(mask, rows.flatten(), cols.flatten(), (30, 50)).view(2, 1, 5, 6)
    assert torch.equal(read, sample_mask(mask, window, (30, 50)))


def test_fill_nearest_and_fit_lines():
    values, valid = torch.arange(20).view(4, 5), torch.zeros(4, 5, dtype=torch.bool)
    valid[1:3, 1:3] = True
    filled, now_valid = fill_nearest(values, valid)
    assert now_valid.all() and filled[0].tolist() == [6, 6, 7, 7, 7] and filled[3, 4] == 12
    rows = (2.5 * torch.arange(6.0) - 1)[:, None].expand(6, 4)[None]
    _, slope, residual = fit_lines(rows.round(), torch.ones_like(rows, dtype=torch.bool), dim=-2)
    assert slope.item() == pytest.approx(2.5, abs=0.1) and residual.item() < 1
    assert fit_lines(rows, torch.zeros_like(rows, dtype=torch.bool), dim=-2)[2].isinf().all()


@pytest.mark.parametrize("size", [(300, 520), (520, 300)])
def test_probes_decode_images_over_256_pixels(tiny_llava_next, size):
    """High digits in their own probes: every source pixel in range, the base view spanning the image."""
    adapter = _measured(tiny_llava_next)
    sources = measure_sources(adapter._run_raw, adapter.chat_prompt("?"), size, ["pixel_values"])["pixel_values"]
    base = sources.view(-1, 3, 16, 16)[0, 0]  # the whole image resized: no padding
    assert (base != PADDING).all()
    rows, cols = base // size[1], base % size[1]
    assert rows.max() > 256 or cols.max() > 256
    assert rows.min() < size[0] / 16 and rows.max() > size[0] * 15 / 16 and cols.max() > size[1] * 15 / 16
    prepared = adapter.prepare(textured_image(*size), make_baseline(textured_image(*size)), "q?",
                               adapter.encode_answer("red"))
    composite = blend(prepared, adapter.project_mask(torch.zeros(1, 1, 4, 4), prepared), insertion=False)
    assert torch.equal(composite["pixel_values"][0], prepared.baseline["pixel_values"])


def test_probes_mark_padding(tiny_llava_pad):
    """Pad-to-square of a wide image: the bands above and below show no image pixel."""
    adapter = _measured(tiny_llava_pad)
    sources = measure_sources(adapter._run_raw, adapter.chat_prompt("?"), (20, 60), ["pixel_values"])["pixel_values"]
    view = sources.view(3, 32, 32)[0]
    assert (view[:8] == PADDING).all() and (view[-8:] == PADDING).all()
    assert (view[13:19] != PADDING).all()


def test_a_processor_that_does_not_copy_pixels_is_refused(tiny_llava):
    adapter = _measured(tiny_llava)
    adapter._raw[True] = raw_processor(adapter.processor, nearest=False)  # bilinear: outputs mix pixels
    image = textured_image(45, 70)
    with pytest.raises(LvlmHeatError, match="cannot measure where the processor puts the image"):
        adapter.prepare(image, make_baseline(image), "q?", adapter.encode_answer("red"))


def test_geometry_is_measured_once_per_image_size(tiny_qwen2_vl):
    adapter = _measured(tiny_qwen2_vl)
    calls = []
    run = adapter._run_raw
    adapter._run_raw = lambda *args, **kwargs: calls.append(1) or run(*args, **kwargs)
    for seed in (1, 2):
        image = textured_image(45, 70, seed=seed)
        adapter.prepare(image, make_baseline(image), f"question {seed}?", adapter.encode_answer("red"))
    first = len(calls)
    image = textured_image(50, 70)
    adapter.prepare(image, make_baseline(image), "q?", adapter.encode_answer("red"))
    assert first > 0 and len(calls) == 2 * first


def test_images_that_do_not_batch_by_concatenation_are_reported(tiny_llava):
    def run(images, prompts):  # a processor that stacks images on a new axis
        return {"pixel_values": torch.ones(1, len(images), 3, 4, 4), "input_ids": torch.ones(len(prompts), 5)}

    one, why = batching(run, "q", (8, 8))
    assert one["pixel_values"].shape == (1, 1, 3, 4, 4) and "'pixel_values' is (1, 1, 3, 4, 4)" in why
    adapter = _measured(tiny_llava)
    image = textured_image(45, 70)
    prepared = adapter.prepare(image, make_baseline(image), "q?", adapter.encode_answer("red"))
    assert prepared.geometry.unbatchable == ""
    prepared.geometry.unbatchable = why
    pixels = blend(prepared, adapter.project_mask(torch.ones(2, 1, 3, 3), prepared), insertion=False)
    with pytest.raises(LvlmHeatError, match="use batch_size 1"):
        adapter.answer_log_probs(prepared, pixels)
    adapter.answer_log_probs(prepared, {k: v[:1] for k, v in pixels.items()})  # one at a time still works


def _relayout(source: str, target, layout: str) -> str:
    """``source`` (plain ``save_pretrained``) rewritten into another layout a checkpoint can have."""
    shutil.copytree(source, target)
    nested = json.loads((target / "processor_config.json").read_text())
    video = {"video_processor_type": "Qwen2VLVideoProcessor", "patch_size": 4, "merge_size": 2,
             "temporal_patch_size": 2}
    if layout == "nested, with a video processor":  # saved on a machine with torchvision
        nested["video_processor"] = video
        (target / "processor_config.json").write_text(json.dumps(nested))
        return str(target)
    (target / "processor_config.json").unlink()
    (target / "chat_template.jinja").unlink()
    image_processor = dict(nested["image_processor"], processor_class=nested["processor_class"])
    if layout == "legacy files":  # preprocessor_config.json, video_preprocessor_config.json, chat_template.json
        (target / "video_preprocessor_config.json").write_text(json.dumps(video))
        (target / "chat_template.json").write_text(json.dumps({"chat_template": QWEN_CHAT}))
    elif layout == "template in the tokenizer, class from model_type":
        del image_processor["processor_class"]
        tokenizer = json.loads((target / "tokenizer_config.json").read_text())
        tokenizer.pop("processor_class", None)
        (target / "tokenizer_config.json").write_text(json.dumps(dict(tokenizer, chat_template=QWEN_CHAT)))
    elif layout == "earlier lvlm_heat layout":  # flat processor_config.json beside preprocessor_config.json
        (target / "processor_config.json").write_text(json.dumps({"processor_class": nested["processor_class"]}))
        (target / "chat_template.jinja").write_text(QWEN_CHAT)
    (target / "preprocessor_config.json").write_text(json.dumps(image_processor))
    return str(target)


@pytest.mark.parametrize("layout", ["plain save_pretrained", "nested, with a video processor", "legacy files",
                                    "template in the tokenizer, class from model_type", "earlier lvlm_heat layout"])
def test_every_checkpoint_layout_loads(tiny_qwen2_vl, tmp_path, layout):
    folder = tiny_qwen2_vl if layout == "plain save_pretrained" else _relayout(tiny_qwen2_vl, tmp_path / "ckpt", layout)
    processor = load_processor(folder)
    assert type(processor).__name__ == "Qwen2VLProcessor" and processor.chat_template == QWEN_CHAT
    reference = load_processor(tiny_qwen2_vl)
    image = textured_image(45, 70)
    ours, theirs = (p(images=image, text="<|image_pad|> hi") for p in (processor, reference))
    assert set(ours) == set(theirs) and all(torch.equal(torch.as_tensor(ours[k]), torch.as_tensor(theirs[k]))
                                            for k in ours)
    assert type(load_adapter(folder, precision="fp32", device="cpu")).__name__ == "QwenVLAdapter"


def test_a_checkpoint_that_cannot_work_says_why_in_one_line(tiny_qwen2_vl, tmp_path):
    folder = _relayout(tiny_qwen2_vl, tmp_path / "unknown", "nested, with a video processor")
    settings = tmp_path / "unknown" / "processor_config.json"
    settings.write_text(json.dumps(dict(json.loads(settings.read_text()), processor_class="NoSuchProcessor")))
    with pytest.raises(LvlmHeatError) as failure:
        load_adapter(folder, precision="fp32", device="cpu")
    message = str(failure.value)
    assert "NoSuchProcessor" in message and "\n" not in message
