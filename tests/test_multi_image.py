"""Several images in one question, and a clip's frames: one mask per image, optimised together.

The toy's answer depends on the red box of whichever image holds it, so the evidence is known: its image gets the
map's mass, swapping the images swaps the maps, and in a clip the frames holding it get the mass. Every tiny
family either explains two images exactly (composites equal to processing the images themselves) or says in one
line that it cannot.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import textured_image
from PIL import Image
from test_families import FAMILIES, QUESTION, _adapters
from toy import ImageListAdapter, RedBoxAdapter, plain_scene, red_box_scene

from lvlm_heat.adapters.base import blend, project_masks
from lvlm_heat.baseline import make_baseline
from lvlm_heat.cli import main
from lvlm_heat.config import ExplainConfig, OptimConfig, RefineConfig, SelectionConfig, VideoConfig, result_settings
from lvlm_heat.data import Query
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.losses import temporal_smoothness
from lvlm_heat.metrics import pointing_hit
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.reporting.outputs import read_record, write_pair_outputs

BOX = (36, 8, 56, 28)


def _config(**changes) -> ExplainConfig:
    return ExplainConfig(select=SelectionConfig(rule="all"), optim=OptimConfig(mask_size=16), **changes)


@pytest.fixture(scope="module")
def pair_and_swapped():
    """The red box in the first of two images, and the same two images swapped."""
    adapter, red, plain = ImageListAdapter(BOX), red_box_scene(box=BOX), plain_scene()
    first = explain_pair(adapter, Query(red, "which is red?", extra_images=[plain]), _config())
    second = explain_pair(adapter, Query(plain, "which is red?", extra_images=[red]), _config())
    return first, second


def test_the_image_holding_the_answer_gets_the_mass(pair_and_swapped):
    record, _ = pair_and_swapped
    assert record.status == "explained" and [part.index for part in record.images] == [0, 1]
    shares = [part.share for part in record.images]
    assert sum(shares) == pytest.approx(1.0) and shares[0] > 0.95
    assert pointing_hit(torch.from_numpy(record.images[0].saliency), BOX)
    assert record.deletion.auc < 0.3 < 0.7 < record.insertion.auc  # cells ranked over both images at once
    assert record.saliency is record.images[0].saliency  # the record's own map is the first image's


def test_swapping_the_images_swaps_the_maps(pair_and_swapped):
    first, second = pair_and_swapped
    assert second.images[1].share > 0.95
    red_first, red_second = first.images[0].grid, second.images[1].grid
    assert np.corrcoef(red_first.ravel(), red_second.ravel())[0, 1] > 0.9
    assert np.abs(red_first - red_second).max() < 0.1


def test_the_files_hold_every_image_and_read_back(pair_and_swapped, tmp_path):
    record, _ = pair_and_swapped
    write_pair_outputs(tmp_path, record)
    data = json.loads((tmp_path / "result.json").read_text())
    assert [(part["index"], part["saliency"]) for part in data["images"]] == [(0, "saliency_image1.npy"),
                                                                              (1, "saliency_image2.npy")]
    assert data["images"][0]["share"] == pytest.approx(record.images[0].share) and data["video"] is False
    for name in ("overlay.png", "overlay_image1.png", "overlay_image2.png", "curves.png"):
        assert Image.open(tmp_path / name).size[0] > 100
    again = read_record(tmp_path)
    for part, back in zip(record.images, again.images):
        assert back.share == part.share and back.size == part.size
        np.testing.assert_allclose(back.saliency, part.saliency, atol=1e-6)


def test_a_clip_puts_the_mass_on_the_frames_that_hold_the_answer(tmp_path):
    frames = [plain_scene(seed=1), plain_scene(seed=2), red_box_scene(box=BOX), red_box_scene(box=BOX)]
    query = Query(frames[0], "is it red?", extra_images=frames[1:], video=True)
    record = explain_pair(ImageListAdapter(BOX), query, _config())
    shares = [part.share for part in record.images]
    assert shares[2] + shares[3] > 0.95 and record.video
    assert "temporal" in record.history[0]
    write_pair_outputs(tmp_path, record)
    with Image.open(tmp_path / "frames.gif") as gif:
        assert gif.n_frames == 4
    assert json.loads((tmp_path / "result.json").read_text())["video"] is True


def test_temporal_smoothness_spreads_the_mask_to_neighbouring_frames():
    """Evidence in the middle frame only: the stronger the temporal term, the more of the map its neighbours get."""
    frames = [plain_scene(seed=1), red_box_scene(box=BOX), plain_scene(seed=2)]

    def neighbours(smoothness: float) -> float:
        query = Query(frames[0], "is it red?", extra_images=frames[1:], video=True)
        record = explain_pair(ImageListAdapter(BOX), query, _config(video=VideoConfig(smoothness=smoothness)))
        return record.images[0].share + record.images[2].share

    assert neighbours(0.0) < 0.02
    assert neighbours(1000.0) > neighbours(0.0) + 0.05
    assert temporal_smoothness(torch.ones(1, 3, 4, 4)) == 0


def test_an_adapter_without_several_images_says_so_in_one_line():
    with pytest.raises(LvlmHeatError, match=r"^RedBoxAdapter does not take several images") as error:
        explain_pair(RedBoxAdapter(BOX), Query(red_box_scene(), "?", extra_images=[plain_scene()]), _config())
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("changes", "message"), [
    ({"method": "igos,superpixel"}, "--method superpixel explains one image at a time"),
    ({"maps": "per_word"}, "--maps per_word explains one image at a time"),
])
def test_what_explains_one_image_at_a_time_says_so(changes, message):
    query = Query(red_box_scene(), "?", extra_images=[plain_scene()])
    with pytest.raises(LvlmHeatError, match=message):
        explain_pair(ImageListAdapter(BOX), query, _config(**changes))


def test_several_images_keep_the_optimised_mask_and_say_the_fine_stage_was_left_out():
    query = Query(red_box_scene(), "?", extra_images=[plain_scene()])
    plain = explain_pair(ImageListAdapter(BOX), query, _config(refine=RefineConfig(stage="none")))
    asked = explain_pair(ImageListAdapter(BOX), query, _config(refine=RefineConfig(stage="superpixel")))
    assert np.array_equal(asked.images[0].grid, plain.images[0].grid)
    assert asked.methods[0].passes == plain.methods[0].passes
    assert any("refines one image at a time" in w for w in asked.warnings)
    assert not any("fine stage" in w for w in plain.warnings)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_explains_two_images_exactly_or_says_it_cannot(family, request):
    """Where a family takes two images, a mask of 0 on the first image and 1 on the second gives exactly what the
    processor makes of (baseline of the first, second image), two composites score together as each alone, and
    both images reach the model; where it cannot, one line names the family."""
    adapter = _adapters(request.getfixturevalue(family))[0]
    images = [textured_image(40, 40, seed=3), textured_image(40, 40, seed=4)]
    baselines = [make_baseline(image) for image in images]
    answer = adapter.encode_answer("red")
    try:
        prepared = adapter.prepare_images(images, baselines, QUESTION, answer)
    except LvlmHeatError as error:
        assert "\n" not in str(error) and adapter.family in str(error)
        pytest.xfail(f"{family}: {error}")  # the family's stated limit, checked above
    assert len(prepared.parts) == 2
    mask = torch.ones(2, 2, 4, 4)
    mask[0, 0] = 0
    mask.requires_grad_(True)
    composites = blend(prepared, project_masks(adapter, mask, prepared), insertion=False)
    mixed = adapter._inputs([baselines[0], images[1]], adapter.chat_prompt(QUESTION, images=2))
    for key, value in composites.items():
        torch.testing.assert_close(value[0].detach(), mixed[key].to(value), atol=1e-5, rtol=0)
        torch.testing.assert_close(value[1].detach(), prepared.image[key], atol=1e-5, rtol=0)
    together = adapter.answer_log_probs(prepared, composites)
    together.sum().backward()
    assert mask.grad[:, 0].abs().sum() > 0 and mask.grad[:, 1].abs().sum() > 0
    alone = [adapter.answer_log_probs(prepared, {k: v[j : j + 1].detach() for k, v in composites.items()})
             for j in range(2)]
    torch.testing.assert_close(together.detach(), torch.cat(alone), atol=1e-4, rtol=1e-4)


def test_train_py_takes_several_images_and_a_clip(tmp_path):
    """The command line: ``--image`` repeated, ``--video`` with ``--video.frames``, and their one-line errors."""
    paths = []
    for k, picture in enumerate([red_box_scene(), plain_scene()]):
        paths.append(tmp_path / f"picture{k}.png")
        picture.save(paths[-1])
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(5):
        plain_scene(seed=k).save(frames / f"{k:03d}.png")
    from lvlm_heat.cli import parse

    options = parse(["--image", str(paths[0]), "--image", str(paths[1]), "--question", "q"])
    assert options["image"] == paths
    options = parse(["--video", str(frames), "--video.frames", "3", "--question", "q"])
    assert options["explain"].video.path == frames and options["explain"].video.frames == 3
    with pytest.raises(SystemExit) as stop:
        main(["--image", str(paths[0]), "--video", str(frames), "--question", "q"])
    assert stop.value.code == 1
    with pytest.raises(SystemExit):
        main(["--video", str(tmp_path / "missing.mp4"), "--question", "q"])


def _write_mp4(path, frames: int = 12) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * k, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_a_video_file_is_sampled_uniformly_first_and_last_included(tmp_path):
    from lvlm_heat.data.video import read_video

    _write_mp4(tmp_path / "clip.mp4")
    frames, notes = read_video(tmp_path / "clip.mp4", 4)
    assert notes == ["4 of 12 frames of the clip"] and frames[0].size == (64, 48)
    brightness = [float(np.asarray(frame).mean()) for frame in frames]  # frames 0, 4, 7, 11 of 12 (20 per frame)
    np.testing.assert_allclose(brightness, [0, 80, 140, 220], atol=6)


def test_a_video_file_without_pyav_is_one_line_naming_what_to_install(tmp_path, monkeypatch):
    import sys

    from lvlm_heat.data.video import read_video

    (tmp_path / "clip.mp4").write_bytes(b"not decoded")
    monkeypatch.setitem(sys.modules, "av", None)  # import av fails, as where it is not installed
    with pytest.raises(LvlmHeatError, match=r"^reading clip.mp4 needs PyAV: pip install av"):
        read_video(tmp_path / "clip.mp4", 4)


def test_a_dataset_lists_several_images_or_a_clip(tmp_path):
    from lvlm_heat.config import DataConfig
    from lvlm_heat.data import read_dataset

    (tmp_path / "clip").mkdir()
    for k in range(3):
        plain_scene(seed=k).save(tmp_path / "clip" / f"{k}.png")
    for name in ("a.png", "b.png"):
        plain_scene().save(tmp_path / name)
    lines = [{"id": "two", "image": ["a.png", "b.png"], "question": "which?"},
             {"id": "clip", "video": "clip", "question": "when?"},
             {"id": "bad", "image": [], "question": "which?"}]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    two, clip, bad = read_dataset(DataConfig(path=tmp_path / "pairs.jsonl"))
    assert two.image == tmp_path / "a.png" and two.extra_images == (tmp_path / "b.png",)
    assert clip.image is None and clip.video == tmp_path / "clip"
    assert bad.error and "image" in bad.error
    from lvlm_heat.data.pairs import open_pair

    query = open_pair(clip, frames=2)
    assert query.video and len(query.images) == 2 and query.image_notes == ["2 of 3 frames of the folder"]


DEMO_PAIRS = __import__("pathlib").Path(__file__).parents[1] / "lvlm_heat" / "demo" / "pairs"


def _two_demo_images(out, order: list[str], *model: str):
    images = [arg for name in order for arg in ("--image", str(DEMO_PAIRS / f"{name}.png"))]
    main([*model, *images, "--question", "What color is the square?", "--output_dir", str(out), "--progress",
          "false", "--threads", "2"])
    record = read_record(out / "_".join(order))
    assert record.status == "explained" and "green" in record.answer
    return [part.share for part in record.images]


@pytest.mark.slow
def test_the_demo_qwen2_vl_finds_which_of_two_demo_images_answers(tmp_path):
    """The README's two-image command: the square is in the second image only, and the map goes there."""
    assert _two_demo_images(tmp_path, ["demo_2", "demo_0"], "--model", "demo-qwen2-vl")[1] > 0.9


@pytest.mark.slow
def test_swapping_two_demo_images_swaps_the_map(tmp_path):
    """The demo LLaVA answers "green" in either order (the Qwen2-VL demo, trained on single images, answers "none"
    when the square comes first), and the map follows the square."""
    assert _two_demo_images(tmp_path / "a", ["demo_2", "demo_0"])[1] > 0.8
    assert _two_demo_images(tmp_path / "b", ["demo_0", "demo_2"])[0] > 0.8


@pytest.mark.slow
def test_the_demo_clip_puts_the_map_on_the_frames_with_the_square(tmp_path):
    """The README's clip: no square in the first frame, a red square entering after; the map is on the square."""
    from lvlm_heat.demo.clip import square_boxes

    main(["--video", str(DEMO_PAIRS / "clip"), "--question", "What color is the square?", "--output_dir",
          str(tmp_path), "--progress", "false", "--threads", "2"])
    record = read_record(tmp_path / "clip")
    assert record.video and "red" in record.answer and len(record.images) == 3
    assert record.images[1].share + record.images[2].share > 0.8
    for part, box in zip(record.images[1:], square_boxes()[1:]):
        assert pointing_hit(torch.from_numpy(part.saliency), box)


def test_the_python_api_takes_a_list_of_images_and_reuses_the_finished_pair(tmp_path, tiny_llava):
    from lvlm_heat import Explainer
    from lvlm_heat.reporting.report import pair_data

    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    textured_image(40, 40, seed=3).save(paths[0])
    textured_image(30, 50, seed=4).save(paths[1])
    config = ExplainConfig(select=SelectionConfig(rule="all"),
                           optim=OptimConfig(iterations=2, ig_iter=2, curve_steps=4, mask_size=6))
    explainer = Explainer(tiny_llava, device="cpu", precision="fp32", config=config)
    record = explainer.explain([str(p) for p in paths], QUESTION, "red", output_dir=tmp_path / "out")
    assert [part.size for part in record.images] == [(40, 40), (30, 50)]
    assert [part.path for part in record.images] == [str(p) for p in paths]
    assert sum(part.share for part in record.images) == pytest.approx(1.0)
    again = explainer.explain([str(p) for p in paths], QUESTION, "red", output_dir=tmp_path / "out")
    assert again.seconds == record.seconds and again.images[1].image is not None  # read back, not explained again
    shares = pair_data(tmp_path / "out", again, 0)["shares"]
    assert [name for name, _ in shares] == ["image 1", "image 2"]


def test_clip_settings_change_the_results_identity_only_when_they_are_not_the_defaults():
    """A record written before clips existed has no ``video`` settings, and still matches the defaults."""
    from dataclasses import asdict

    before = {k: v for k, v in asdict(ExplainConfig()).items() if k != "video"}
    assert result_settings(asdict(ExplainConfig())) == result_settings(before)
    assert result_settings(asdict(ExplainConfig(video=VideoConfig(path="a.mp4")))) == result_settings(before)
    assert result_settings(asdict(ExplainConfig(video=VideoConfig(frames=4)))) != result_settings(before)
