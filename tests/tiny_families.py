"""Tiny random checkpoints of the families without a hand-written adapter, built from their configs.

Each builder makes a 2-layer model (hidden size 32), a word-level tokenizer with the family's
special tokens, the family's own processor with a small image size and a chat template that
places the image the way the family's real template does; all is saved with the library's own
``save_pretrained``, the layout a user's checkpoint arrives in. The measured adapter takes them.
"""

from __future__ import annotations

import torch
from conftest import save_checkpoint
from conftest import word_tokenizer as tokenizer

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
TURNS = ("{% for m in messages %}{{ START }}{{ m['role'] }}\n{% for c in m['content'] %}{% if c['type'] == 'image' %}"
         "{{ IMAGE }}{% else %}{{ c['text'] }}{% endif %}{% endfor %}{{ END }}\n{% endfor %}"
         "{% if add_generation_prompt %}{{ START }}assistant\n{% endif %}")


def chat(image: str, start: str = "<|im_start|>", end: str = "<|im_end|>") -> str:
    """A one-image chat template: ``START role\\n IMAGE text END`` per turn."""
    return TURNS.replace("{{ IMAGE }}", image).replace("{{ START }}", start).replace("{{ END }}", end)


def text_config(cls, tok, **extra):
    """A 2-layer decoder config of ``cls`` for ``tok``'s vocabulary."""
    return cls(vocab_size=len(tok), num_key_value_heads=2, max_position_embeddings=2048, pad_token_id=0,
               bos_token_id=2, eos_token_id=3, **SMALL, **extra)


def save_tiny_gemma3(folder) -> str:
    """Gemma 3: one 32 px SigLIP view pooled to 2 x 2 image tokens between ``<start_of_image>`` and its end."""
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    torch.manual_seed(0)
    names = {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"}
    tok = tokenizer([*names.values(), "<start_of_turn>", "<end_of_turn>"], names, bos="<bos>", eos="<eos>")
    processor = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok,
                                chat_template=chat("<start_of_image>", "<start_of_turn>", "<end_of_turn>"),
                                image_seq_length=4)
    text = text_config(Gemma3TextConfig, tok, head_dim=16, query_pre_attn_scalar=16, sliding_window=64)
    vision = SiglipVisionConfig(**SMALL, image_size=32, patch_size=8)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                          image_token_index=tok.image_token_id, boi_token_index=tok.boi_token_id,
                          eoi_token_index=tok.eoi_token_id)
    model = Gemma3ForConditionalGeneration(config)
    with torch.no_grad():  # zero at init: the image would not reach the language model
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.2)
    return save_checkpoint(model, processor, folder)


def save_tiny_idefics3(folder, smol: bool = False) -> str:
    """Idefics3 (or SmolVLM): 16 px tiles of the image resized within 48 px, plus a 16 px global view."""
    import transformers as tf

    from lvlm_heat.adapters.processors import build_processor

    torch.manual_seed(0)
    grid = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tok = tokenizer(["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>", *grid],
                    {"image_token": "<image>"})
    family = "SmolVLM" if smol else "Idefics3"
    image_processor = getattr(tf, f"{family}ImageProcessor")(size={"longest_edge": 48},
                                                             max_image_size={"longest_edge": 16})
    template = chat("<image>", "", "<end_of_utterance>")
    if smol:  # SmolVLM's processor has a video slot
        processor = build_processor(tf.SmolVLMProcessor, image_processor, tok, image_seq_len=4, chat_template=template)
    else:
        processor = tf.Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=4,
                                         chat_template=template)
    vision = getattr(tf, f"{family}VisionConfig")(**SMALL, image_size=16, patch_size=4)
    config = getattr(tf, f"{family}Config")(vision_config=vision, text_config=text_config(tf.LlamaConfig, tok),
                                            scale_factor=2, image_token_id=tok.image_token_id)
    return save_checkpoint(getattr(tf, f"{family}ForConditionalGeneration")(config), processor, folder)


def save_tiny_qwen3_vl(folder) -> str:
    """Qwen3-VL: 4 px patches, 2 x 2 merging, deepstack features from the first vision layer."""
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLTextConfig,
    )

    from lvlm_heat.adapters.processors import build_processor

    torch.manual_seed(0)
    marks = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = tokenizer(marks, {"image_token": "<|image_pad|>"})
    image_processor = Qwen2VLImageProcessor(patch_size=4, merge_size=2, temporal_patch_size=2,
                                            size={"shortest_edge": 16 * 16, "longest_edge": 48 * 48})
    processor = build_processor(Qwen3VLProcessor, image_processor, tok,
                                chat_template=chat("<|vision_start|><|image_pad|><|vision_end|>"))
    text = text_config(Qwen3VLTextConfig, tok, head_dim=16,
                       rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0})
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=4,
                  spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64, deepstack_visual_indexes=[0])
    ids = {name: tok.convert_tokens_to_ids(mark) for name, mark in zip(
        ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"), marks[4:] + marks[2:4])}
    config = Qwen3VLConfig(text_config=text, vision_config=vision, **ids)
    return save_checkpoint(Qwen3VLForConditionalGeneration(config), processor, folder)


def save_tiny_internvl(folder) -> str:
    """InternVL (transformers port): 16 px tiles of a best-fit grid of up to 4, and a thumbnail."""
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVisionConfig,
        Qwen2Config,
    )

    from lvlm_heat.adapters.processors import build_processor

    torch.manual_seed(0)
    names = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
             "video_token": "<video>"}
    tok = tokenizer([*names.values(), "<|im_start|>", "<|im_end|>"], names)
    image_processor = GotOcr2ImageProcessor(size={"height": 16, "width": 16}, crop_to_patches=True, max_patches=4)
    processor = build_processor(InternVLProcessor, image_processor, tok, image_seq_length=4,
                                chat_template=chat("<IMG_CONTEXT>\n"))
    vision = InternVLVisionConfig(**SMALL, image_size=16, patch_size=4)
    config = InternVLConfig(vision_config=vision, text_config=text_config(Qwen2Config, tok), image_seq_length=4,
                            image_token_id=tok.context_image_token_id, downsample_ratio=0.5)
    return save_checkpoint(InternVLForConditionalGeneration(config), processor, folder)


def save_tiny_mistral3(folder, llava: bool = False) -> str:
    """Mistral 3 (Pixtral vision): the image at its own aspect ratio within 48 px, 4 px patches merged 2 x 2.

    ``llava``: Pixtral-12B's layout instead, a ``llava`` model type with the Pixtral processor (no merging).
    """
    from transformers import (
        LlavaConfig,
        LlavaForConditionalGeneration,
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        MistralConfig,
        PixtralImageProcessor,
        PixtralVisionConfig,
    )

    from lvlm_heat.adapters.processors import processor_class

    PixtralProcessor = processor_class("PixtralProcessor")  # transformers' own import needs torchvision
    torch.manual_seed(0)
    tok = tokenizer(["[IMG]", "[IMG_BREAK]", "[IMG_END]", "[INST]", "[/INST]"], {"image_token": "[IMG]"})
    image_processor = PixtralImageProcessor(size={"longest_edge": 48}, patch_size={"height": 4, "width": 4})
    merge = 1 if llava else 2
    template = ("{% for m in messages %}[INST]{% for c in m['content'] %}{% if c['type'] == 'image' %}[IMG]"
                "{% else %}{{ c['text'] }}{% endif %}{% endfor %}[/INST]{% endfor %}")
    processor = PixtralProcessor(image_processor=image_processor, tokenizer=tok, patch_size=4, spatial_merge_size=merge,
                                 chat_template=template)
    vision = PixtralVisionConfig(**SMALL, image_size=48, patch_size=4, head_dim=16)
    text = text_config(MistralConfig, tok, head_dim=16)
    if llava:
        config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.image_token_id,
                             vision_feature_layer=-1, vision_feature_select_strategy="full")
        return save_checkpoint(LlavaForConditionalGeneration(config), processor, folder)
    config = Mistral3Config(vision_config=vision, text_config=text, image_token_index=tok.image_token_id,
                            spatial_merge_size=2)
    return save_checkpoint(Mistral3ForConditionalGeneration(config), processor, folder)


def save_tiny_paligemma(folder) -> str:
    """PaliGemma: one 32 px SigLIP view, 16 image tokens prepended by the processor; no chat template."""
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    torch.manual_seed(0)
    tok = tokenizer(["<image>"], {"image_token": "<image>"}, bos="<bos>", eos="<eos>")
    image_processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    vision = SiglipVisionConfig(**SMALL, image_size=32, patch_size=8, projection_dim=32)
    config = PaliGemmaConfig(vision_config=vision, text_config=text_config(GemmaConfig, tok, head_dim=16),
                             image_token_index=tok.image_token_id, projection_dim=32)
    return save_checkpoint(PaliGemmaForConditionalGeneration(config), processor, folder)


def save_tiny_vipllava(folder) -> str:
    """VipLLaVA: LLaVA-1.5's CLIP view, features from several vision layers."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaProcessor,
        VipLlavaConfig,
        VipLlavaForConditionalGeneration,
    )

    torch.manual_seed(0)
    tok = tokenizer(["<image>", "<|im_start|>", "<|im_end|>"], {"image_token": "<image>"})
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                  crop_size={"height": 32, "width": 32}),
                               tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, chat_template=chat("<image>\n"))
    config = VipLlavaConfig(vision_config=CLIPVisionConfig(**SMALL, image_size=32, patch_size=8),
                            text_config=text_config(LlamaConfig, tok), image_token_index=tok.image_token_id,
                            vision_feature_layer=[-2, -1], image_seq_length=16)
    return save_checkpoint(VipLlavaForConditionalGeneration(config), processor, folder)


def save_tiny_aya_vision(folder) -> str:
    """Aya Vision: GOT-OCR2 tiles of 16 px (up to 4) and a thumbnail, pixel-shuffled by 2; a Cohere 2 language model, as
    the released checkpoints have (transformers 5.25 scales the logits by its ``logit_scale``)."""
    from transformers import (
        AyaVisionConfig,
        AyaVisionForConditionalGeneration,
        AyaVisionProcessor,
        Cohere2Config,
        GotOcr2ImageProcessor,
        SiglipVisionConfig,
    )

    torch.manual_seed(0)
    marks = ["<image>", "<|START_OF_IMG|>", "<|END_OF_IMG|>", "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>", "TILE",
             "TILE_GLOBAL", "<|im_start|>", "<|im_end|>"]
    tok = tokenizer(marks, {"image_token": "<image>"})
    image_processor = GotOcr2ImageProcessor(size={"height": 16, "width": 16}, crop_to_patches=True, max_patches=4)
    processor = AyaVisionProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8, img_size=16,
                                   chat_template=chat("<image>"))  # patch_size: vision patch x downsampling
    config = AyaVisionConfig(vision_config=SiglipVisionConfig(**SMALL, image_size=16, patch_size=4),
                             text_config=text_config(Cohere2Config, tok), downsample_factor=2,
                             image_token_index=tok.convert_tokens_to_ids("<|IMG_PATCH|>"))
    return save_checkpoint(AyaVisionForConditionalGeneration(config), processor, folder)


def save_tiny_deepseek_vl(folder) -> str:
    """DeepSeek-VL (SigLIP only): the image resized on its longest side to 32 px and padded square."""
    from transformers import (
        DeepseekVLConfig,
        DeepseekVLForConditionalGeneration,
        DeepseekVLImageProcessor,
        DeepseekVLProcessor,
        LlamaConfig,
    )

    torch.manual_seed(0)
    tok = tokenizer(["<image_placeholder>", "<|im_start|>", "<|im_end|>"], {"image_token": "<image_placeholder>"})
    processor = DeepseekVLProcessor(image_processor=DeepseekVLImageProcessor(size={"height": 32, "width": 32}),
                                    tokenizer=tok, num_image_tokens=64, chat_template=chat("<image_placeholder>"))
    vision = dict(model_type="siglip_vision_model", **SMALL, image_size=32, patch_size=4)
    config = DeepseekVLConfig(text_config=text_config(LlamaConfig, tok).to_dict(), vision_config=vision,
                              image_token_id=tok.image_token_id)
    return save_checkpoint(DeepseekVLForConditionalGeneration(config), processor, folder)


def save_tiny_idefics2(folder) -> str:
    """Idefics2: the image resized within 16 to 32 px, padded in the batch, a perceiver of 4 latents."""
    from transformers import (
        Idefics2Config,
        Idefics2ForConditionalGeneration,
        Idefics2ImageProcessor,
        Idefics2Processor,
        MistralConfig,
    )

    torch.manual_seed(0)
    names = {"image_token": "<image>", "image_boundary_token": "<fake_token_around_image>",
             "end_of_utterance_token": "<end_of_utterance>"}
    tok = tokenizer(list(names.values()), names)
    image_processor = Idefics2ImageProcessor(size={"shortest_edge": 16, "longest_edge": 32})
    processor = Idefics2Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=4,
                                  chat_template=chat("<image>", "", "<end_of_utterance>"))
    config = Idefics2Config(vision_config=dict(**SMALL, image_size=32, patch_size=4),
                            perceiver_config={"hidden_size": 32, "rms_norm_eps": 1e-6, "hidden_act": "silu",
                                              "resampler_n_latents": 4, "resampler_depth": 1, "resampler_n_heads": 2,
                                              "resampler_head_dim": 8, "num_key_value_heads": 1},
                            text_config=text_config(MistralConfig, tok).to_dict(), image_token_id=tok.image_token_id)
    return save_checkpoint(Idefics2ForConditionalGeneration(config), processor, folder)


BUILDERS = {
    "gemma3": save_tiny_gemma3,
    "idefics3": save_tiny_idefics3,
    "smolvlm": lambda folder: save_tiny_idefics3(folder, smol=True),
    "qwen3_vl": save_tiny_qwen3_vl,
    "internvl": save_tiny_internvl,
    "mistral3": save_tiny_mistral3,
    "pixtral": lambda folder: save_tiny_mistral3(folder, llava=True),
    "paligemma": save_tiny_paligemma,
    "vipllava": save_tiny_vipllava,
    "aya_vision": save_tiny_aya_vision,
    "deepseek_vl": save_tiny_deepseek_vl,
    "idefics2": save_tiny_idefics2,
}
