"""Released checkpoints' shapes, built with random weights: the cost of a real model without downloading it.

A :class:`Shape` holds what a released checkpoint's ``config.json`` and processor files say about its
size: the transformers config class, layers, widths, heads, vocabulary, the vision tower, image and
patch sizes, and the processor's settings (copied from the published files, see each entry).
:func:`save_random_checkpoint` builds that model with random weights (optionally shallower and
narrower, for a CPU), a word-level tokenizer of the checkpoint's vocabulary size with its special
tokens at their real ids, and the family's own processor, and saves them with ``save_pretrained``:
the folder loads through :func:`lvlm_heat.adapters.load_adapter` exactly as the released checkpoint
does, and every model pass costs what it costs with the released weights.

The answers of a random model mean nothing; its special tokens are suppressed in generation, so it
always answers ``max_new_tokens`` ordinary tokens (a fixed, worst-case answer length).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lvlm_heat.errors import LvlmHeatError

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Resize:
    """How far a shape is shrunk (for a CPU): at most ``layers`` layers in every tower, and every
    tower ``width_divisor`` times narrower (fewer heads of the same size, narrower MLPs)."""

    layers: int | None = None
    width_divisor: int = 1

    def __post_init__(self) -> None:
        if self.layers is not None and self.layers < 1:
            raise ValueError(f"layers must be at least 1, got {self.layers}")
        if self.width_divisor < 1:
            raise ValueError(f"width_divisor must be at least 1, got {self.width_divisor}")

    def depth(self, layers: int) -> int:
        return min(layers, self.layers) if self.layers else layers

    def heads(self, heads: int, kv_heads: int | None = None) -> tuple[int, int]:
        """``(heads, kv_heads)`` divided by ``width_divisor``, at least one, heads a multiple of kv heads."""
        kv = max(1, (kv_heads or heads) // self.width_divisor)
        return max(kv, heads // self.width_divisor // kv * kv), kv

    def width(self, size: int) -> int:
        return max(1, math.ceil(size / self.width_divisor))


@dataclass(frozen=True)
class Shape:
    """A released checkpoint's shape.

    Attributes:
        name: The short name (``--random_weights``), as the preset in ``configs/``.
        checkpoint: The hub id it stands for.
        build: ``build(resize)`` gives ``(config, processor)``.
    """

    name: str
    checkpoint: str
    build: Callable[[Resize], tuple[Any, Any]]


def vocabulary(size: int, specials: dict[str, int], named: dict[str, str] | None = None, *, unk: str = "<unk>",
               bos: str | None = None, eos: str, pad: str):
    """A word-level tokenizer of exactly ``size`` tokens: ``specials`` at their ids, the demo's words, then
    fillers ``w<i>``; lower-cased, split at whitespace and punctuation, ``bos`` (if any) put first.
    ``named`` special tokens become attributes (``tokenizer.image_token``, ...), as the processors read them."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from lvlm_heat.demo.families import WORDS

    specials = dict(specials)
    free = (i for i in range(size) if i not in set(specials.values()))
    if unk not in specials:
        specials[unk] = next(free)
    vocab = dict(specials)
    for word in WORDS:
        vocab.setdefault(word, next(free))
    vocab.update({f"w{i}": i for i in free})
    backend = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(list(specials))
    if bos is not None:  # the prompt starts with it, as Llama's tokenizer starts it
        backend.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=unk, bos_token=bos, eos_token=eos,
                                   pad_token=pad, extra_special_tokens=named or {})


# -- LLaVA-1.5-7B: llava-hf/llava-1.5-7b-hf (Vicuna-7B v1.5 + CLIP ViT-L/14 at 336 px) -----------------
LLAVA_CHAT = ("{% for m in messages %}{% if m['role'] == 'user' %}USER: {% for c in m['content'] %}"
              "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %} "
              "{% else %}ASSISTANT: {{ m['content'][0]['text'] }}</s>{% endif %}{% endfor %}"
              "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def llava_1_5_7b(resize: Resize):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor

    tokenizer = vocabulary(32064, {"<unk>": 0, "<s>": 1, "</s>": 2, "<image>": 32000, "<pad>": 32001},
                           {"image_token": "<image>"}, bos="<s>", eos="</s>", pad="<pad>")
    image_processor = CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                         resample=3, image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA_CHAT)
    heads, kv = resize.heads(32)
    text = LlamaConfig(vocab_size=32064, hidden_size=heads * 128, intermediate_size=resize.width(11008),
                       num_hidden_layers=resize.depth(32), num_attention_heads=heads, num_key_value_heads=kv,
                       max_position_embeddings=4096, rms_norm_eps=1e-5, pad_token_id=32001, bos_token_id=1,
                       eos_token_id=2)
    vision_heads, _ = resize.heads(16)
    vision = CLIPVisionConfig(hidden_size=vision_heads * 64, intermediate_size=resize.width(4096),
                              num_hidden_layers=resize.depth(24), num_attention_heads=vision_heads, image_size=336,
                              patch_size=14, projection_dim=768, hidden_act="quick_gelu")
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=32000, pad_token_id=32001,
                         projector_hidden_act="gelu", vision_feature_layer=-2,
                         vision_feature_select_strategy="default", image_seq_length=576, tie_word_embeddings=False)
    return config, processor


# -- Qwen2.5-VL-7B: Qwen/Qwen2.5-VL-7B-Instruct (Qwen2.5-7B + a 32-block windowed ViT, 14 px patches) --
QWEN_CHAT = ("{% for m in messages %}{% if loop.first and m['role'] != 'system' %}<|im_start|>system\n"
             "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ m['role'] }}\n"
             "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
             "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
QWEN_SPECIALS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|vision_start|>": 151652,
                 "<|vision_end|>": 151653, "<|vision_pad|>": 151654, "<|image_pad|>": 151655, "<|video_pad|>": 151656}


def qwen2_5_vl_7b(resize: Resize):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLTextConfig, Qwen2_5_VLVisionConfig, Qwen2VLImageProcessor

    from lvlm_heat.adapters.processors import build_processor, processor_class

    tokenizer = vocabulary(152064, QWEN_SPECIALS, {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
                           eos="<|im_end|>", pad="<|endoftext|>")
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 16384},
                                            patch_size=14, temporal_patch_size=2, merge_size=2,
                                            image_mean=CLIP_MEAN, image_std=CLIP_STD)
    processor = build_processor(processor_class("Qwen2_5_VLProcessor"), image_processor, tokenizer,
                                chat_template=QWEN_CHAT)
    heads, kv = resize.heads(28, 4)
    text = Qwen2_5_VLTextConfig(
        vocab_size=152064, hidden_size=heads * 128, intermediate_size=resize.width(18944),
        num_hidden_layers=resize.depth(28), num_attention_heads=heads, num_key_value_heads=kv,
        max_position_embeddings=128000, rms_norm_eps=1e-6, max_window_layers=28, sliding_window=32768,
        rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0},
        bos_token_id=151643, eos_token_id=151645, pad_token_id=151643, tie_word_embeddings=False)
    depth = resize.depth(32)
    vision_heads, _ = resize.heads(16)
    vision = Qwen2_5_VLVisionConfig(
        depth=depth, hidden_size=vision_heads * 80, intermediate_size=resize.width(3420), num_heads=vision_heads,
        out_hidden_size=heads * 128, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
        tokens_per_second=2, hidden_act="silu", fullatt_block_indexes=[i for i in (7, 15, 23, 31) if i < depth] or [depth - 1])
    ids = {key: QWEN_SPECIALS[token] for key, token in (("image_token_id", "<|image_pad|>"),
                                                         ("video_token_id", "<|video_pad|>"),
                                                         ("vision_start_token_id", "<|vision_start|>"),
                                                         ("vision_end_token_id", "<|vision_end|>"))}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids), processor


# -- InternVL3-8B: OpenGVLab/InternVL3-8B-hf (Qwen2.5-7B + InternViT-300M, 448 px tiles, 256 tokens each) -
INTERNVL_CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
                 "{% if c['type'] == 'image' %}<IMG_CONTEXT>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
                 "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def internvl3_8b(resize: Resize):
    from transformers import GotOcr2ImageProcessor, InternVLConfig, InternVLVisionConfig, Qwen2Config

    from lvlm_heat.adapters.processors import build_processor, processor_class

    marks = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
             "video_token": "<video>"}
    specials = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<img>": 151665,
                "</img>": 151666, "<IMG_CONTEXT>": 151667, "<video>": 151670}
    tokenizer = vocabulary(151674, specials, marks, eos="<|im_end|>", pad="<|endoftext|>")
    image_processor = GotOcr2ImageProcessor(size={"height": 448, "width": 448}, crop_to_patches=True, min_patches=1,
                                            max_patches=12, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    processor = build_processor(processor_class("InternVLProcessor"), image_processor, tokenizer,
                                image_seq_length=256, chat_template=INTERNVL_CHAT)
    heads, kv = resize.heads(28, 4)
    text = Qwen2Config(vocab_size=151674, hidden_size=heads * 128, intermediate_size=resize.width(18944),
                       num_hidden_layers=resize.depth(28), num_attention_heads=heads, num_key_value_heads=kv,
                       max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
                       bos_token_id=151643, eos_token_id=151645, pad_token_id=151643, tie_word_embeddings=False)
    vision_heads, _ = resize.heads(16)
    vision = InternVLVisionConfig(hidden_size=vision_heads * 64, intermediate_size=resize.width(4096),
                                  num_hidden_layers=resize.depth(24), num_attention_heads=vision_heads,
                                  image_size=[448, 448], patch_size=[14, 14], norm_type="layer_norm",
                                  use_qk_norm=False, layer_scale_init_value=0.1, use_mean_pooling=True)
    config = InternVLConfig(vision_config=vision, text_config=text, image_token_id=151667, image_seq_length=256,
                            downsample_ratio=0.5, projector_hidden_act="gelu", vision_feature_layer=-1,
                            vision_feature_select_strategy="default", tie_word_embeddings=False)
    return config, processor


SHAPES = {shape.name: shape for shape in (
    Shape("llava-1.5-7b", "llava-hf/llava-1.5-7b-hf", llava_1_5_7b),
    Shape("qwen2.5-vl-7b", "Qwen/Qwen2.5-VL-7B-Instruct", qwen2_5_vl_7b),
    Shape("internvl3-8b", "OpenGVLab/InternVL3-8B-hf", internvl3_8b),
)}
"""The shapes :func:`save_random_checkpoint` builds, by name."""


def find_shape(name: str) -> Shape:
    """The shape called ``name``, or standing for the hub id ``name`` (case-insensitive)."""
    for shape in SHAPES.values():
        if name.lower() in (shape.name, shape.checkpoint.lower()):
            return shape
    known = ", ".join(f"{s.name} ({s.checkpoint})" for s in SHAPES.values())
    raise LvlmHeatError(f"no shape {name!r} to build with random weights: known are {known}")


def save_random_checkpoint(name: str, folder: str | Path, resize: Resize = Resize(), dtype: torch.dtype = torch.float32,
                           device: str | torch.device = "cpu", seed: int = 0) -> str:
    """Build the shape ``name`` with random weights and save model, tokenizer and processor to ``folder``.

    The weights are initialised on ``device`` in ``dtype`` (a 7B model in bf16 needs 15 GB there, and
    as much on disk), then saved with ``save_pretrained`` like a released checkpoint.

    Args:
        name: A name of :data:`SHAPES` or the hub id it stands for.
        folder: Where the checkpoint goes.
        resize: Fewer layers and narrower towers (CPU tests); default: the released shape.
        dtype: The saved weights' dtype.
        device: Where the weights are initialised.
        seed: Seed of the random weights.

    Returns:
        ``folder``, as a string.
    """
    from lvlm_heat.adapters.loading import model_class

    config, processor = find_shape(name).build(resize)
    torch.manual_seed(seed)
    with torch.device(device):
        model = model_class(config).from_config(config, dtype=dtype)
    tokenizer = processor.tokenizer
    generation = model.generation_config
    generation.eos_token_id, generation.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    generation.bos_token_id = tokenizer.bos_token_id
    generation.suppress_tokens = sorted(set(tokenizer.all_special_ids) | {tokenizer.unk_token_id})
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model
    return str(folder)


__all__ = ["SHAPES", "Resize", "Shape", "find_shape", "save_random_checkpoint", "vocabulary"]
