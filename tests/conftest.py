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


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, saying why, where no CUDA GPU is present (``.ci/run`` selects every marker)."""
    if torch.cuda.is_available():
        return
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))

WORDS = "user assistant : ? . what color is it the a of circle square triangle red green blue yellow object shape".split()


def word_tokenizer(specials: list[str], named: dict[str, str] | None = None, bos: str = "<s>", eos: str = "</s>",
                   additional: list[str] | None = None):
    """A word-level fast tokenizer over :data:`WORDS` after ``<pad> <unk> bos eos`` and ``specials``;
    ``named`` special tokens become attributes (``tokenizer.image_token``, ``.image_token_id``, ...)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = ["<pad>", "<unk>", bos, eos, *specials]
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab + WORDS)}, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(vocab)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token=bos, eos_token=eos,
        extra_special_tokens=named or {}, additional_special_tokens=additional or None,
    )


def make_tokenizer(extra: list[str] = (), image_token: str = "<image>"):
    return word_tokenizer(["<image>", "<video>", *extra], {"image_token": image_token}, additional=list(extra))


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


CHAT = (
    "{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %} ASSISTANT:"
)


def _llama(tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                       pad_token_id=0, bos_token_id=2, eos_token_id=3)


def save_checkpoint(model, processor, folder) -> str:
    model.generation_config.eos_token_id = 3
    model.generation_config.pad_token_id = 0
    model.save_pretrained(folder)
    processor.save_pretrained(folder)  # plain save_pretrained: the layout a user's checkpoint arrives in
    return str(folder)


def save_tiny_llava_next(folder, onevision: bool = False) -> str:
    """Anyres LLaVA with 16 px tiles and a grid of up to 2 x 3 tiles."""
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        SiglipVisionConfig,
    )

    from lvlm_heat.adapters.processors import build_processor

    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    pinpoints = [[16, 32], [32, 16], [32, 32], [32, 48], [48, 32]]
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=16, patch_size=4)
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    if onevision:  # SigLIP tower (no CLS token), as the real OneVision
        vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                    image_size=16, patch_size=4)
        image_processor = LlavaOnevisionImageProcessor(size={"height": 16, "width": 16}, image_grid_pinpoints=pinpoints)
        processor = build_processor(LlavaOnevisionProcessor, image_processor, tokenizer, num_image_tokens=16,
                                    vision_feature_select_strategy="full", chat_template=CHAT,
                                    vision_aspect_ratio="anyres_max_9")
        config = LlavaOnevisionConfig(vision_config=vision, text_config=_llama(tokenizer), image_token_index=image_token,
                                      image_grid_pinpoints=pinpoints, vision_feature_select_strategy="full",
                                      vision_feature_layer=-1, vision_aspect_ratio="anyres_max_9")
        model = LlavaOnevisionForConditionalGeneration(config)
    else:
        image_processor = LlavaNextImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16},
                                                  image_grid_pinpoints=pinpoints)
        processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=4,
                                       vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                       chat_template=CHAT)
        config = LlavaNextConfig(vision_config=vision, text_config=_llama(tokenizer), image_token_index=image_token,
                                 image_grid_pinpoints=pinpoints, vision_feature_layer=-1)
        model = LlavaNextForConditionalGeneration(config)
    return save_checkpoint(model, processor, folder)


QWEN_CHAT = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def save_tiny_qwen2_vl(folder, version: str = "2") -> str:
    """Qwen2-VL (or 2.5-VL) with 4 px patches, 2 x 2 merging and a small pixel budget."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )

    from lvlm_heat.adapters.processors import build_processor

    torch.manual_seed(0)
    tokenizer = make_tokenizer(extra=["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                                      "<|image_pad|>", "<|video_pad|>"], image_token="<|image_pad|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>",
                                                          "<|vision_end|>")}
    image_processor = Qwen2VLImageProcessor(patch_size=4, merge_size=2, temporal_patch_size=2,
                                            size={"shortest_edge": 16 * 16, "longest_edge": 48 * 48})
    processor = build_processor(Qwen2VLProcessor, image_processor, tokenizer, chat_template=QWEN_CHAT)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
                pad_token_id=0, bos_token_id=2, eos_token_id=3)
    common = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    if version == "2":
        vision = dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=4,
                      spatial_merge_size=2, temporal_patch_size=2)
        model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(vision_config=vision, text_config=text, **common))
    else:
        vision = dict(depth=2, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=2, patch_size=4,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=16, fullatt_block_indexes=[1])
        model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(vision_config=vision, text_config=text, **common))
    return save_checkpoint(model, processor, folder)


def save_tiny_deepseek_vl_hybrid(folder) -> str:
    """SigLIP at 16 px and SAM at 32 px, with a normal initialiser range for SAM."""
    from transformers import (
        DeepseekVLHybridConfig,
        DeepseekVLHybridForConditionalGeneration,
        DeepseekVLHybridImageProcessor,
        DeepseekVLHybridProcessor,
    )

    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    image_processor = DeepseekVLHybridImageProcessor(size={"height": 16, "width": 16},
                                                     high_res_size={"height": 32, "width": 32})
    processor = DeepseekVLHybridProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT,
                                          num_image_tokens=16)
    config = DeepseekVLHybridConfig(
        text_config=_llama(tokenizer).to_dict(),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=16, patch_size=4),
        high_res_vision_config=dict(hidden_size=32, output_channels=8, num_hidden_layers=2, num_attention_heads=2,
                                    image_size=32, patch_size=4, global_attn_indexes=[1], window_size=4, mlp_dim=64,
                                    initializer_range=0.02),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    model = DeepseekVLHybridForConditionalGeneration(config)
    with torch.no_grad():
        model.model.high_res_vision_alpha.fill_(1.0)  # zero at init: the SAM view would not count
    return save_checkpoint(model, processor, folder)


@pytest.fixture(scope="session")
def tiny_deepseek_vl_hybrid(tmp_path_factory) -> str:
    return save_tiny_deepseek_vl_hybrid(tmp_path_factory.mktemp("tiny_deepseek_vl_hybrid"))


@pytest.fixture(scope="session")
def tiny_qwen2_vl(tmp_path_factory) -> str:
    return save_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny_qwen2_vl"))


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl(tmp_path_factory) -> str:
    return save_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny_qwen2_5_vl"), version="2.5")


@pytest.fixture(scope="session")
def tiny_llava_next(tmp_path_factory) -> str:
    return save_tiny_llava_next(tmp_path_factory.mktemp("tiny_llava_next"))


@pytest.fixture(scope="session")
def tiny_llava_onevision(tmp_path_factory) -> str:
    return save_tiny_llava_next(tmp_path_factory.mktemp("tiny_llava_onevision"), onevision=True)


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> str:
    return save_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture(scope="session")
def tiny_llava_pad(tmp_path_factory) -> str:
    return save_tiny_llava(tmp_path_factory.mktemp("tiny_llava_pad"), pad=True)


def _tiny_family(tmp_path_factory, name: str) -> str:
    from tiny_families import BUILDERS

    return BUILDERS[name](tmp_path_factory.mktemp(f"tiny_{name}"))


@pytest.fixture(scope="session")
def tiny_gemma3(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "gemma3")


@pytest.fixture(scope="session")
def tiny_idefics3(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "idefics3")


@pytest.fixture(scope="session")
def tiny_smolvlm(tmp_path_factory) -> str:
    pytest.importorskip("num2words", reason="SmolVLM's processor needs num2words")
    return _tiny_family(tmp_path_factory, "smolvlm")


@pytest.fixture(scope="session")
def tiny_qwen3_vl(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "qwen3_vl")


@pytest.fixture(scope="session")
def tiny_internvl(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "internvl")


@pytest.fixture(scope="session")
def tiny_mistral3(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "mistral3")


@pytest.fixture(scope="session")
def tiny_pixtral(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "pixtral")


@pytest.fixture(scope="session")
def tiny_paligemma(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "paligemma")


@pytest.fixture(scope="session")
def tiny_vipllava(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "vipllava")


@pytest.fixture(scope="session")
def tiny_aya_vision(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "aya_vision")


@pytest.fixture(scope="session")
def tiny_deepseek_vl(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "deepseek_vl")


@pytest.fixture(scope="session")
def tiny_idefics2(tmp_path_factory) -> str:
    return _tiny_family(tmp_path_factory, "idefics2")


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
