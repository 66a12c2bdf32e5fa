"""Per-word maps (``--maps per_word``): one mask per selected word beside the joint one, in one run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from toy import ColourWordsAdapter, red_box_scene

from lvlm_heat.config import ExplainConfig, OptimConfig, SelectionConfig
from lvlm_heat.data import Query
from lvlm_heat.metrics import pointing_hit
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.reporting.outputs import read_record, write_pair_outputs

RED, GREEN = (36, 8, 56, 28), (6, 40, 24, 58)


def _peak_in(saliency: np.ndarray, box) -> bool:
    import torch

    return pointing_hit(torch.from_numpy(saliency), box)


def _explain(maps: str):
    config = ExplainConfig(maps=maps, optim=OptimConfig(mask_size=16, iterations=5),
                           select=SelectionConfig(rule="all"))
    return explain_pair(ColourWordsAdapter(RED, GREEN), Query(red_box_scene(box=RED), "Which colours?", bbox=RED),
                        config)


@pytest.fixture(scope="module")
def joint_and_per_word():
    return _explain("joint"), _explain("per_word")


def test_each_word_map_peaks_on_its_own_object(joint_and_per_word):
    _, result = joint_and_per_word
    assert [(w.position, w.word, w.tokens) for w in result.words] == [(0, "red", [0]), (1, "green", [1])]
    red, green = result.words
    assert _peak_in(red.saliency, RED) and _peak_in(green.saliency, GREEN)
    assert red.saliency[RED[1]:RED[3], RED[0]:RED[2]].mean() > red.saliency[GREEN[1]:GREEN[3], GREEN[0]:GREEN[2]].mean() + 0.2
    assert green.saliency[GREEN[1]:GREEN[3], GREEN[0]:GREEN[2]].mean() > green.saliency[RED[1]:RED[3], RED[0]:RED[2]].mean() + 0.2
    for word in result.words:  # each scored on its own token: deletion destroys it, insertion restores it
        assert word.deletion.auc < 0.35 < 0.65 < word.insertion.auc


def test_the_joint_map_is_the_one_a_joint_run_makes(joint_and_per_word):
    joint, per_word = joint_and_per_word
    assert joint.words is None
    np.testing.assert_allclose(per_word.saliency, joint.saliency, atol=1e-4)
    assert per_word.deletion_auc == pytest.approx(joint.deletion_auc, abs=1e-4)
    assert per_word.insertion_auc == pytest.approx(joint.insertion_auc, abs=1e-4)
    assert len(joint.history) == len(per_word.history)
    for a, b in zip(joint.history, per_word.history):
        for key in ("deletion", "total", "refine/deletion", "refine/insertion"):  # the optimisation's, the fine stage's
            if key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    assert {"word0/deletion", "word1/insertion", "word1/total"} <= set(per_word.history[0])


def test_word_files_and_record(joint_and_per_word, tmp_path):
    _, result = joint_and_per_word
    write_pair_outputs(tmp_path, result)
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["words"] == json.loads(json.dumps(result.to_dict()["words"]))
    for entry, word in zip(record["words"], result.words):
        assert entry["word"] == word.word and entry["tokens"] == word.tokens
        np.testing.assert_array_equal(np.load(tmp_path / entry["saliency"]), word.grid)  # the mask's cells
        assert (tmp_path / entry["overlay"]).stat().st_size > 0
        assert entry["deletion_auc"] == pytest.approx(word.deletion.auc)
    assert [e["pointing_hit"] for e in record["words"]] == [True, False]  # bbox is the red square
    assert (tmp_path / "words.png").stat().st_size > 0
    read = read_record(tmp_path)
    for word, again in zip(result.words, read.words):
        np.testing.assert_array_equal(again.saliency, word.saliency)
        assert again.to_dict() == word.to_dict()


def test_tensorboard_shows_each_words_mask_and_map(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = ExplainConfig(maps="per_word", optim=OptimConfig(mask_size=16, iterations=2),
                           select=SelectionConfig(rule="all"))
    explain_pair(ColourWordsAdapter(RED, GREEN), Query(red_box_scene(box=RED), "Which colours?", pair_id="toy"),
                 config, log_dir=tmp_path)
    tags = set()
    for events in (tmp_path / "toy").glob("events.out.tfevents.*"):
        tags |= set(EventAccumulator(str(events)).Reload().Tags()["images"])
    assert {"mask/word_0_red", "mask/word_1_green", "saliency/word_0_red", "saliency/word_1_green"} <= tags


def test_a_word_holding_every_selected_token_reuses_the_joint_map():
    config = ExplainConfig(maps="per_word", optim=OptimConfig(mask_size=16, iterations=2),
                           select=SelectionConfig(rule="words", words=["green"]))
    result = explain_pair(ColourWordsAdapter(RED, GREEN), Query(red_box_scene(box=RED), "Which colours?"), config)
    assert [w.word for w in result.words] == ["green"]
    assert result.words[0].saliency is result.saliency
    assert _peak_in(result.saliency, GREEN)


def test_per_word_needs_the_single_mask():
    with pytest.raises(ValueError, match="masks 1"):
        ExplainConfig(maps="per_word", optim=OptimConfig(masks=2))


def test_independent_slices_step_each_mask_by_its_own_largest_gradient():
    import torch

    from lvlm_heat.optim import IGOSNesterov

    moves = []
    for independent in (False, True):
        mask = torch.nn.Parameter(torch.ones(2, 1, 1, 2))
        mask.grad = torch.tensor([[[[4.0, 2.0]]], [[[0.1, 0.05]]]])
        IGOSNesterov([mask], step_size=0.5, independent_slices=independent).step()
        moves.append((1 - mask.detach()).flatten().tolist())
    assert moves[0] == pytest.approx([0.5, 0.25, 0.0125, 0.00625], abs=1e-6)  # one scale: the small slice barely moves
    assert moves[1] == pytest.approx([0.5, 0.25, 0.5, 0.25], abs=1e-6)  # each slice moved by its own scale


@pytest.mark.parametrize("model", ["demo", pytest.param("demo-qwen2-vl", marks=pytest.mark.slow)])
def test_demo_model_colour_word_map_lands_on_its_object(model):
    """Each demo model on "What color is the triangle?" -> "the triangle is green", words 'triangle' and
    'green' explained: the colour word's own map peaks on the triangle, and the joint map is a joint run's."""
    import json as _json

    from PIL import Image

    from lvlm_heat.adapters import load_adapter
    from lvlm_heat.demo import DEMO_MODELS, DEMO_PAIRS

    pair = [_json.loads(line) for line in DEMO_PAIRS.read_text().splitlines()][2]
    image = Image.open(DEMO_PAIRS.parent / pair["image"])
    adapter = load_adapter(str(DEMO_MODELS[model]), precision="fp32", device="cpu")
    results = [
        explain_pair(adapter, Query(image, pair["question"], bbox=tuple(pair["bbox"])),
                     ExplainConfig(maps=maps, select=SelectionConfig(rule="words", words=["triangle", "green"])))
        for maps in ("joint", "per_word")
    ]
    joint, per_word = results
    assert per_word.answer == "the triangle is green"
    assert [w.word for w in per_word.words] == ["triangle", "green"]
    assert _peak_in(per_word.words[1].saliency, pair["bbox"])
    # 'triangle' is copied from the question: the image hardly changes it, its curves are flagged
    assert [w.unstable for w in per_word.words] == [True, False]
    np.testing.assert_allclose(per_word.saliency, joint.saliency, atol=1e-3)
