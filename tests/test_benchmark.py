"""``lvlm-heat benchmark --random_weights``: released checkpoints' shapes with random weights,
built without downloads, measured end to end (here shallow and narrow, on the CPU)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lvlm_heat import cli
from lvlm_heat.adapters import load_adapter
from lvlm_heat.adapters.loading import model_class
from lvlm_heat.benchmark import benchmark, pass_flops, peak_flops
from lvlm_heat.config import ExplainConfig, SelectionConfig
from lvlm_heat.data import Query
from lvlm_heat.prepare import prepare
from lvlm_heat.shapes import SHAPES, Resize, find_shape, save_random_checkpoint


def main(argv: list[str]) -> dict:
    return cli.main(argv, benchmark, "lvlm-heat benchmark")

SMALL = ["--layers", "2", "--width_divisor", "16"]
QUICK = ["--optim.iterations", "1", "--optim.ig_iter", "2", "--optim.curve_steps", "3", "--max_new_tokens", "4",
         "--repeats", "1", "--precision", "fp32", "--device", "cpu"]


@pytest.mark.parametrize(("name", "billions"), [("llava-1.5-7b", 7.06), ("qwen2.5-vl-7b", 8.29), ("internvl3-8b", 7.94)])
def test_a_shape_at_full_size_has_the_released_checkpoints_parameter_count(name, billions):
    """Built on the meta device: no memory. The counts are the ones the checkpoints' model cards give."""
    config, processor = SHAPES[name].build(Resize())
    with torch.device("meta"):
        model = model_class(config).from_config(config)
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(billions, abs=0.01)
    vocab = (getattr(config, "text_config", None) or config).vocab_size
    assert len(processor.tokenizer) == vocab  # every id the model can write decodes
    image_token = getattr(config, "image_token_id", None) or config.image_token_index
    assert processor.tokenizer.convert_tokens_to_ids(processor.image_token) == image_token


def test_shapes_are_found_by_name_or_hub_id_and_an_unknown_one_is_one_line(capsys):
    assert find_shape("Qwen/Qwen2.5-VL-7B-Instruct") is SHAPES["qwen2.5-vl-7b"]
    with pytest.raises(SystemExit) as stop:
        main(["--random_weights", "gpt-5", *QUICK])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no shape 'gpt-5'" in err and "llava-1.5-7b" in err


def test_a_random_checkpoint_loads_like_the_released_one_and_answers_ordinary_tokens(tmp_path):
    folder = save_random_checkpoint("llava-1.5-7b", tmp_path, Resize(layers=1, width_divisor=32))
    adapter = load_adapter(folder, precision="fp32", device="cpu")
    assert type(adapter).__name__ == "LlavaAdapter"
    config = adapter.model.config
    assert (config.text_config.num_hidden_layers, config.vision_config.num_hidden_layers) == (1, 1)
    assert config.text_config.hidden_size == 4096 // 32 and config.text_config.vocab_size == 32064
    from PIL import Image

    picture = Image.new("RGB", (200, 150), (40, 90, 160))
    answer = adapter.generate(picture, "what color is it ?", 6)
    texts, special = adapter.token_texts(answer)
    assert len(answer) == 6 and not any(special) and all(t.strip() for t in texts)  # special tokens suppressed
    prepared = prepare(adapter, Query(picture, "what color is it ?", "".join(texts)),
                       ExplainConfig(select=SelectionConfig(rule="all")))
    ids = prepared.inputs.text["input_ids"][0]
    assert ids[0] == 1 and (ids == 32000).sum() == 576  # <s> first, as Llama's tokenizer puts it; the image
    assert prepared.inputs.image["pixel_values"].shape == (1, 3, 336, 336)
    forward, both = pass_flops(prepared, False), pass_flops(prepared, True)
    assert 1.5 < both / forward < 3.5  # the backward reaches the pixels, not the frozen weights


def test_peak_flops_are_known_only_on_a_gpu():
    assert peak_flops(torch.device("cpu"), torch.bfloat16) == "n/a on CPU"


def test_a_memory_limit_needs_a_gpu(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--memory_limit_gb", "24", *QUICK])
    assert stop.value.code == 1 and "needs a CUDA device" in capsys.readouterr().err


def test_the_random_weights_benchmark_reports_every_figure(capsys):
    report = main(["--random_weights", "llava-1.5-7b", *SMALL, *QUICK, "--optim.batch_size", "auto"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report
    assert report["model"] == "llava-hf/llava-1.5-7b-hf (random weights, 2 layers, 1/16 width)"
    assert 576 + 3 + 5 < report["tokens"] < 576 + 3 + 30  # the image's tokens, the answer's, the prompt
    assert report["answer_tokens"] == 4 and report["composites"] == 1 * 2 * 2 + 2 * 2
    assert report["refine_composites"] == 3 * 2 * 2  # the fine stage: 3 iterations of both games on 2 path points
    assert report["batch_size"] == 16 and report["batch_size_chosen_by"] == "CPU default"
    for key in ("seconds_per_pair", "seconds_answer", "seconds_prepare", "seconds_optimise", "seconds_curves",
                "bare_seconds_forward_backward", "bare_seconds_forward", "overhead_ratio", "sequential_seconds",
                "speedup_vs_sequential", "achieved_flops_per_second", "peak_host_memory_mb"):
        assert math.isfinite(report[key]) and report[key] > 0, key
    phases = sum(report[f"seconds_{k}"] for k in ("answer", "prepare", "optimise", "curves"))
    assert phases <= report["seconds_per_pair"] * 1.01
    assert report["flops_per_pair"] > 1e9
    assert report["achieved_flops_per_second"] == pytest.approx(
        report["flops_per_pair"] / (report["seconds_optimise"] + report["seconds_curves"]))
    assert report["peak_gpu_memory_mb"] == report["share_of_peak"] == report["peak_flops_per_second"] == "n/a on CPU"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size", "image_tokens"), [
    ("qwen2.5-vl-7b", (768, 1024), 37 * 27),  # resized to 1036 x 756: 37 x 27 merged tokens of 28 px
    ("internvl3-8b", (480, 640), 13 * 256),  # a 4 x 3 grid of 448 px tiles and a thumbnail, 256 tokens each
])
def test_the_other_shapes_run_end_to_end_with_their_image_tokens(name, size, image_tokens):
    """``--image_size [height, width]``, (H, W) as everywhere else."""
    report = main(["--random_weights", name, *SMALL, *QUICK, "--image_size", json.dumps(list(size)),
                   "--sequential", "false"])
    assert report["image_size"] == f"{size[1]}x{size[0]}"
    assert image_tokens < report["tokens"] < image_tokens + 40
    assert "speedup_vs_sequential" not in report and report["overhead_ratio"] > 0


def test_per_word_maps_cost_about_one_joint_map_per_extra_word():
    report = main(["--per_word", "true", *QUICK])  # the demo model: the first demo pair
    words = report["per_word_words"]
    assert words == 4  # "the square is green": every word of the answer (rule all), each with a mask of its own beside the joint one
    # 1 + words masks; the curves and the optimisation both scale with them (timing noise allowed)
    assert 0.5 * (1 + words) < report["per_word_cost_ratio"] < 1.5 * (1 + words)


def test_each_method_is_timed_alone_on_the_same_pair():
    report = main(["--method", "igos,superpixel,grid,gradient", *QUICK, "--sequential", "false",
                   "--occlusion.segments", "12"])
    for name in ("igos", "superpixel", "grid", "gradient"):
        for key in ("seconds_per_pair", "map_seconds", "map_passes", "speedup_vs_igos"):
            assert math.isfinite(report[f"{name}_{key}"]) and report[f"{name}_{key}"] > 0, (name, key)
        assert report[f"{name}_map_seconds"] < report[f"{name}_seconds_per_pair"]
    assert (report["gradient_map_passes"], report["grid_map_passes"], report["igos_speedup_vs_igos"]) == (16, 65, 1.0)
    assert report["igos_map_passes"] >= 1 * 2 * 2  # one iteration of two path points, both games, and the warm start
    assert report["seconds_optimise"] > 0  # the optimised mask's phases, as without --method
