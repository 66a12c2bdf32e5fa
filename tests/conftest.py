"""Tiny random models built from configs, with tokenizer and processor built here.

Each is saved with ``save_pretrained`` and loaded back through :func:`load_adapter`,
the same path a user's checkpoint takes. No downloads.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)  # CI has 2 cores; one busy process per core is fastest

WORDS = "user assistant : ? . what color is the a of circle square triangle red green blue yellow object shape".split()


def make_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(specials + WORDS)}, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )


def save_tiny_llava(folder, *, pad: bool = False, size: int = 32, patch: int = 8) -> str:
    """A 2-layer random LLaVA: ``pad`` = LlavaImageProcessor with pad-to-square, else CLIP resize + crop."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaImageProcessor,
        LlavaProcessor,
    )

    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    if pad:
        image_processor = LlavaImageProcessor(
            do_pad=True, size={"height": size, "width": size}, do_center_crop=False, crop_size={"height": size, "width": size}
        )
    else:
        image_processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template="{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n"
        "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %} ASSISTANT:",
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       image_size=size, patch_size=patch),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                                pad_token_id=0, bos_token_id=2, eos_token_id=3),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(size // patch) ** 2,
        vision_feature_layer=-1,
    )
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = 3
    model.generation_config.pad_token_id = 0
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> str:
    return save_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture(scope="session")
def tiny_llava_pad(tmp_path_factory) -> str:
    return save_tiny_llava(tmp_path_factory.mktemp("tiny_llava_pad"), pad=True)


@pytest.fixture(scope="session")
def tiny_adapter(tiny_llava):
    from lvlm_heat.adapters import load_adapter

    return load_adapter(tiny_llava, precision="fp32", device="cpu")


def textured_image(height: int = 48, width: int = 80, seed: int = 0) -> Image.Image:
    """A non-square image with structure at every scale."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR), dtype=np.int16)
    grain = rng.integers(-20, 21, size=(height, width, 3))
    return Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8))


@pytest.fixture
def image() -> Image.Image:
    return textured_image()
