"""The sanity checks: randomisation restores the weights, occlusion finds known evidence, superpixels follow
edges, and ``lvlm-heat sanity`` writes its report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from toy import RedBoxAdapter, red_box_scene

from lvlm_heat.cli import main
from lvlm_heat.config import ExplainConfig, OcclusionConfig, OptimConfig, SanityConfig, SelectionConfig
from lvlm_heat.data import Query
from lvlm_heat.methods.superpixels import slic, work_image
from lvlm_heat.sanity import run_sanity, sanity_check
from lvlm_heat.sanity.randomisation import WeightSnapshot, find_blocks, randomise_

TINY = OptimConfig(iterations=1, ig_iter=2, curve_steps=4, mask_size=8)
BOX = (36, 8, 56, 28)


def _outputs(adapter, prepared) -> torch.Tensor:
    with torch.no_grad():
        return adapter.answer_log_probs(prepared, {k: v[None] for k, v in prepared.image.items()})


def test_superpixels_follow_a_sharp_boundary():
    pixels = np.zeros((72, 96, 3), np.uint8)
    pixels[:, :37] = (200, 40, 40)  # a vertical edge off the seeds' grid, and a horizontal one
    pixels[:, 37:] = (40, 60, 190)
    pixels[45:, 37:] = (60, 170, 60)
    side = np.zeros((72, 96), np.int64)
    side[:, 37:] = 1
    side[45:, 37:] = 2
    labels = slic(work_image(Image.fromarray(pixels)), segments=40)
    assert 20 <= int(labels.max()) + 1 <= 60
    for k in range(int(labels.max()) + 1):
        counts = np.bincount(side[labels.numpy() == k], minlength=3)
        assert counts.sum() - counts.max() <= 3, f"segment {k} straddles the boundary: {counts.tolist()}"


def test_occlusion_peaks_on_the_only_evidence():
    records, _, maps = sanity_check(
        RedBoxAdapter(BOX), [Query(red_box_scene(box=BOX), "What color is it?", pair_id="toy", bbox=BOX)],
        ExplainConfig(optim=OptimConfig(iterations=2, ig_iter=4, curve_steps=8, mask_size=16),
                      occlusion=OcclusionConfig(segments=30)),
        SanityConfig(stages=[], all_parameters=False, rerun=False, random_answers=False),
    )
    left, top, right, bottom = BOX
    for name in ("grid", "superpixel"):
        metrics, saliency = records[0]["methods"][name], maps["toy"][name]
        row, col = metrics["peak"]
        assert metrics["pointing_hit"] and top <= row < bottom and left <= col < right, name
        assert saliency[top:bottom, left:right].min() > 0 and saliency[40:58, 6:24].max() == 0  # the green distractor
        assert metrics["passes"] == metrics["regions"] + 1
    assert records[0]["methods"]["superpixel"]["box_mass"] > 0.9


def test_weights_restored_exactly_even_when_the_check_fails(tiny_adapter, image):
    prepared = tiny_adapter.prepare(image, image, "What color is it?", tiny_adapter.encode_answer("it is red"))
    before = {name: p.detach().clone() for name, p in tiny_adapter.model.named_parameters()}
    reference = _outputs(tiny_adapter, prepared)
    blocks = find_blocks(tiny_adapter.model, lambda: _outputs(tiny_adapter, prepared))
    assert blocks[0][0] == "lm_head" and "vision" in blocks[-1][0]  # top first, down to the vision encoder
    with pytest.raises(RuntimeError), WeightSnapshot(tiny_adapter.model).kept():
        randomise_(list(tiny_adapter.model.parameters()), torch.Generator().manual_seed(0))
        assert not torch.equal(_outputs(tiny_adapter, prepared), reference)
        raise RuntimeError("interrupted")
    assert all(torch.equal(p, before[name]) for name, p in tiny_adapter.model.named_parameters())
    assert torch.equal(_outputs(tiny_adapter, prepared), reference)


def test_randomised_model_maps_decorrelate_and_weights_come_back(tiny_adapter, image):
    before = {name: p.detach().clone() for name, p in tiny_adapter.model.named_parameters()}
    explain = ExplainConfig(select=SelectionConfig(rule="all"), optim=OptimConfig(iterations=3, ig_iter=4,
                                                                                  curve_steps=4, mask_size=8))
    records, cascade, _ = sanity_check(tiny_adapter, [Query(image, "What color is it?", "it is red", "pair")],
                                       explain, SanityConfig(stages=[1.0], random_answers=False))
    assert all(torch.equal(p, before[name]) for name, p in tiny_adapter.model.named_parameters())
    rerun = records[0]["rerun"]["spearman"]
    randomised = [stage["spearman"] for stage in records[0]["randomisation"]]
    blocks = len(cascade["cascade"])
    assert [s["stage"] for s in cascade["stages"]] == [f"top {blocks}/{blocks} blocks", "every parameter"]
    assert cascade["stages"][-1]["parameter_fraction"] == 1.0
    assert max(randomised) < rerun, (randomised, rerun)


def test_command_line_writes_sanity_json(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"box": list(BOX)}))
    scene = np.asarray(red_box_scene(box=BOX)).copy()
    Image.fromarray(scene).save(tmp_path / "a.png")
    scene[40:60, 40:60] = (30, 30, 200)  # the same evidence, another distractor
    Image.fromarray(scene).save(tmp_path / "b.png")
    Image.fromarray(scene[:, ::-1].copy()).save(tmp_path / "m.png")  # the red box moved: the toy sees no red
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps({"question": "What color is it?", **r}) for r in [
        {"id": "a", "image": "a.png", "bbox": list(BOX)}, {"id": "b", "image": "b.png"}, {"id": "m", "image": "m.png"},
        {"id": "c", "image": "missing.png"},
    ]))
    out = tmp_path / "out"
    main(["--adapter", "toy.TwoEncoderAdapter", "--model", str(folder), "--data.path", str(tmp_path / "pairs.jsonl"),
          "--output_dir", str(out), "--optim.iterations", "1", "--optim.ig_iter", "2", "--optim.curve_steps", "4",
          "--optim.mask_size", "8", "--occlusion.segments", "12", "--sanity.stages", "[0.0]"], run_sanity)
    report = json.loads((out / "sanity.json").read_text())  # strict JSON: json.loads refuses NaN only when asked
    assert set(report) == {"model", "adapter", "settings", "summary", "interpretation", "pairs"}
    summary = report["summary"]
    assert [summary[key] for key in ("pairs", "checked", "not_grounded", "failed")] == [4, 2, 1, 1]
    assert set(summary["methods"]) == {"igos", "grid", "superpixel"}
    for metrics in summary["methods"].values():
        assert {"pointing_game", "box_mass", "deletion_auc", "insertion_auc", "passes"} <= set(metrics)
        assert metrics["pairs_with_box"] == 1
    assert [s["stage"] for s in summary["randomisation"]["stages"]] == ["top 1/1 blocks", "every parameter"]
    assert summary["rerun"]["spearman"]["count"] == 2
    assert report["pairs"][0]["random_answer"]["reason"].startswith("a one-word answer")
    assert report["interpretation"] and "NaN" not in (out / "sanity.json").read_text()
    assert set(np.load(out / "maps" / "a.npz")) >= {"igos", "grid", "superpixel",
                                                    "rerun", "randomised_every_parameter"}


def test_demo_model_end_to_end(tmp_path, capsys):
    report = main(["--pairs", "1", "--optim.iterations", "1", "--optim.ig_iter", "2", "--optim.curve_steps", "4",
                   "--output_dir", str(tmp_path)], run_sanity)
    assert report["summary"]["checked"] == 1 and (tmp_path / "sanity.json").is_file()
    stages = report["summary"]["randomisation"]["stages"]
    assert len(stages) == 5 and stages[0]["last_block"] == "lm_head"
    assert "rank correlation" in capsys.readouterr().out
