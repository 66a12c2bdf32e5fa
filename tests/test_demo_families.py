"""The demo model formats: stage 1 pretrains exactly the vision features the language model reads."""

import pytest
import torch

from lvlm_heat.demo import DEMO_MODELS
from lvlm_heat.demo.families import FAMILIES
from lvlm_heat.demo.synthetic import SCENE_SIZE, make_scene


@pytest.mark.parametrize("name", ["llava", "llava_l2"])
def test_pretrained_features_are_what_the_projector_reads(name):
    family = FAMILIES[name]
    torch.manual_seed(0)
    processor, model = family.untrained()
    pixels = family.pixels(processor, [make_scene(1, i, SCENE_SIZE).image for i in range(2)])
    with torch.no_grad():
        features = family.features(model, pixels, [0, 1])
        read = model.model.get_image_features(pixel_values=pixels)
        read = read.pooler_output if hasattr(read, "pooler_output") else read
        projected = model.model.multi_modal_projector(features)
    assert features.shape == (2, family.grid**2, family.feature_width(model))
    assert torch.allclose(torch.cat(list(read)).view_as(projected), projected, atol=1e-5)


def test_the_layer_two_model_reads_the_second_to_last_layer_at_another_geometry():
    family = FAMILIES["llava_l2"]
    torch.manual_seed(0)
    processor, model = family.untrained()
    assert model.config.vision_feature_layer == -2 and family.grid == 8
    assert model.config.vision_config.image_size == 96 and model.config.vision_config.patch_size == 12
    pixels = family.pixels(processor, [make_scene(1, 0, SCENE_SIZE).image])
    with torch.no_grad():
        last = family.tower(model)(pixel_values=pixels).last_hidden_state[:, 1:]
    assert pixels.shape[-2:] == (96, 96)
    assert not torch.allclose(family.features(model, pixels, [0]), last)  # not the last layer


def test_shipped_models_match_their_families():
    import json

    for family in FAMILIES.values():
        assert family.out in DEMO_MODELS.values()
        config = json.loads((family.out / "config.json").read_text())
        if "vision_feature_layer" in config:
            assert config["vision_feature_layer"] == family.feature_layer
            assert config["vision_config"]["patch_size"] == family.patch
