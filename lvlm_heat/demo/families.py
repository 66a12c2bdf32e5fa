"""The demo model formats, built untrained: two tiny LLaVA-1.5s and a tiny Qwen2-VL.

Both share one word-level vocabulary, the widths of every layer (128 wide, 4 heads, 4 vision
and 3 text layers) and 8 px patches; they differ in chat format, image preprocessing and vision
tower. Each family also tells the training stages of :mod:`lvlm_heat.demo.training` how to feed
it images and where its per-token vision features are, so those stages never ask which family
they train.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import Tensor, nn

from lvlm_heat.demo import DEMO_MODELS
from lvlm_heat.demo.synthetic import COLOR_NAMES, SHAPES

INPUT_SIZE = 64  # LLaVA's input side in pixels
PATCH = 8  # patch side in pixels, both families
MERGE = 2  # Qwen2-VL merges MERGE x MERGE patches into one image token
WIDTH = 128  # hidden size of every layer, vision and text
HEADS = 4
VISION_LAYERS = 4
TEXT_LAYERS = 3

# Every word the synthetic task's questions and answers use, and a few more for free-form prompts.
WORDS = (
    "user assistant : ? . , ! ' what which color colour shape is are the a an of object objects "
    "in on this that image picture there it and or to left right top bottom one how many yes no none "
    + " ".join(SHAPES)
    + " "
    + " ".join(COLOR_NAMES)
).split()

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %} "
    "{% else %}ASSISTANT: "
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_prompt(processor, question: str) -> str:
    """The prompt of one user turn (an image, then ``question``), up to where the assistant answers."""
    return processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
        add_generation_prompt=True,
    )


def _text_config(tokenizer) -> dict:
    """The language model's settings both families share: its sizes, ``tokenizer``'s vocabulary and special ids."""
    return {
        "vocab_size": len(tokenizer), "hidden_size": WIDTH, "intermediate_size": 4 * WIDTH,
        "num_hidden_layers": TEXT_LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": HEADS,
        "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


class DemoFamily(ABC):
    """A demo model format: how to build it untrained, and how the training stages feed it images.

    Attributes:
        name: The ``--family`` choice.
        out: The shipped folder a build saves to by default.
        steps: Default optimiser steps of vision pretraining and of answer training.
        batch: Default batch size of both stages.
        eos: The token that ends an answer.
        image_token: The prompt token the processor expands into the image's tokens.
        markers: The chat format's special tokens besides ``<pad> <unk> <s>`` and ``eos``, image token included.
        grid: Image tokens per side.
    """

    name: str
    out: Path
    steps: tuple[int, int]
    batch: int
    eos: str
    image_token: str
    markers: tuple[str, ...]
    grid: int

    def untrained(self):
        """The processor and a freshly initialised model (seed torch first for a reproducible one).

        Returns:
            ``(processor, model)``.
        """
        processor = self.processor()
        model = self.model(processor.tokenizer)
        # generate() stops at the end of an answer and pads batches with the tokenizer's own tokens
        model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
        model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
        return processor, model

    def tokenizer(self):
        """A word-level tokenizer over :data:`WORDS`: lower-cased, split at whitespace and punctuation."""
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        specials = ["<pad>", "<unk>", "<s>", self.eos, *self.markers]
        backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(specials + WORDS)}, unk_token="<unk>"))
        backend.normalizer = normalizers.Lowercase()
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        backend.add_special_tokens(list(self.markers))  # else the pre-tokenizer splits them at their punctuation
        return PreTrainedTokenizerFast(
            tokenizer_object=backend,
            pad_token="<pad>",
            unk_token="<unk>",
            bos_token="<s>",
            eos_token=self.eos,
            extra_special_tokens={"image_token": self.image_token},
            additional_special_tokens=list(self.markers),
            padding_side="left",
        )

    @abstractmethod
    def processor(self):
        """The processor: :meth:`tokenizer`, an image processor and the chat template."""

    @abstractmethod
    def model(self, tokenizer) -> nn.Module:
        """A randomly initialised model whose vocabulary and special token ids are ``tokenizer``'s."""

    @abstractmethod
    def tower(self, model) -> nn.Module:
        """The vision tower of ``model``, pretrained on its own in stage 1."""

    @abstractmethod
    def feature_width(self, model) -> int:
        """The width of :meth:`features`."""

    @abstractmethod
    def pixels(self, processor, images) -> Tensor:
        """Preprocessed images, one per index of the first dimension."""

    @abstractmethod
    def inputs(self, pixels: Tensor, index) -> dict:
        """The model's image inputs for the images ``pixels[index]``."""

    @abstractmethod
    def features(self, model, pixels: Tensor, index) -> Tensor:
        """``(len(index), grid * grid, feature_width)`` vision features of ``pixels[index]``, in raster order."""

    def token_inputs(self, input_ids: Tensor, image_id: int) -> dict:
        """Model inputs derived from the token ids; none unless the family needs them."""
        return {}


class LlavaDemo(DemoFamily):
    """LLaVA-1.5 format: CLIP-style tower, resize + centre crop to 64 px, 64 image tokens from the last layer."""

    name = "llava"
    out = DEMO_MODELS["demo"]
    steps = (1200, 1200)  # vision pretraining, answer training
    batch = 64
    eos = "</s>"
    image_token = "<image>"
    markers = ("<image>",)
    input_size = INPUT_SIZE
    patch = PATCH
    feature_layer = -1  # the vision layer whose output the language model reads (LLaVA's vision_feature_layer)

    @property
    def grid(self) -> int:
        return self.input_size // self.patch

    def processor(self):
        from transformers import CLIPImageProcessor, LlavaProcessor

        image_processor = CLIPImageProcessor(
            size={"shortest_edge": self.input_size},
            crop_size={"height": self.input_size, "width": self.input_size},
            do_center_crop=True,
        )
        return LlavaProcessor(
            image_processor=image_processor,
            tokenizer=self.tokenizer(),
            patch_size=self.patch,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
            chat_template=LLAVA_CHAT_TEMPLATE,
        )

    def model(self, tokenizer) -> nn.Module:
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

        vision = CLIPVisionConfig(
            hidden_size=WIDTH, intermediate_size=4 * WIDTH, num_hidden_layers=VISION_LAYERS, num_attention_heads=HEADS,
            image_size=self.input_size, patch_size=self.patch, projection_dim=WIDTH,
        )
        text = LlamaConfig(max_position_embeddings=256, **_text_config(tokenizer))
        config = LlavaConfig(
            vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids(self.image_token),
            image_seq_length=self.grid**2, vision_feature_select_strategy="default",
            vision_feature_layer=self.feature_layer,
        )
        return LlavaForConditionalGeneration(config)

    def tower(self, model) -> nn.Module:
        return model.model.vision_tower

    def feature_width(self, model) -> int:
        return self.tower(model).config.hidden_size

    def pixels(self, processor, images) -> Tensor:
        return processor.image_processor(images, return_tensors="pt")["pixel_values"]

    def inputs(self, pixels: Tensor, index) -> dict:
        return {"pixel_values": pixels[index]}

    def features(self, model, pixels: Tensor, index) -> Tensor:
        # the layer the language model reads, without the CLS token
        out = self.tower(model)(pixel_values=pixels[index], output_hidden_states=self.feature_layer != -1)
        states = out.last_hidden_state if self.feature_layer == -1 else out.hidden_states[self.feature_layer]
        return states[:, 1:]


class LlavaLayerDemo(LlavaDemo):
    """LLaVA-1.5's other choices: the second-to-last vision layer's output, and 12 px patches on a 96 px crop
    (64 image tokens, each over a larger part of the scene)."""

    name = "llava_l2"
    out = DEMO_MODELS["demo-llava-l2"]
    input_size = 96
    patch = 12
    feature_layer = -2


class QwenDemo(DemoFamily):
    """Qwen2-VL format: dynamic resolution, 8 px patches merged 2 x 2 (36 tokens at 96 px)."""

    name = "qwen2_vl"
    out = DEMO_MODELS["demo-qwen2-vl"]
    steps = (600, 900)  # 144 patches an image: four times LLaVA's cost per step
    batch = 48
    eos = "<|im_end|>"
    image_token = "<|image_pad|>"
    markers = ("<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    grid = 6  # a 128 px scene is resized to 96 px: 12 x 12 patches, 6 x 6 after merging

    def processor(self):
        from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor

        from lvlm_heat.adapters.processors import build_processor

        image_processor = Qwen2VLImageProcessor(
            patch_size=PATCH, merge_size=MERGE, temporal_patch_size=2,
            size={"shortest_edge": 48 * 48, "longest_edge": 96 * 96},
        )
        return build_processor(Qwen2VLProcessor, image_processor, self.tokenizer(), chat_template=QWEN_CHAT_TEMPLATE)

    def model(self, tokenizer) -> nn.Module:
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in
               ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
        config = Qwen2VLConfig(
            vision_config={
                "depth": VISION_LAYERS, "embed_dim": WIDTH, "hidden_size": WIDTH, "num_heads": HEADS, "mlp_ratio": 4,
                "patch_size": PATCH, "spatial_merge_size": MERGE, "temporal_patch_size": 2,
            },
            text_config={
                "max_position_embeddings": 512,
                "rope_parameters": {"rope_type": "default", "mrope_section": [4, 6, 6], "rope_theta": 10000.0},
                **_text_config(tokenizer),
            },
            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        )
        return Qwen2VLForConditionalGeneration(config)

    def tower(self, model) -> nn.Module:
        return model.model.visual

    def feature_width(self, model) -> int:
        return model.config.text_config.hidden_size  # the patch merger projects to the language model's width

    @property
    def grid_thw(self) -> Tensor:
        """``(1, 3)`` frames, patch rows and patch columns of every scene."""
        return torch.tensor([[1, self.grid * MERGE, self.grid * MERGE]])

    def pixels(self, processor, images) -> Tensor:
        out = processor.image_processor(images, return_tensors="pt")
        if not (out["image_grid_thw"] == self.grid_thw).all():  # inputs() gives every image this grid
            raise ValueError(f"expected every image at {self.grid_thw.tolist()[0]} patches, got other sizes")
        return out["pixel_values"].view(len(images), -1, out["pixel_values"].shape[-1])

    def inputs(self, pixels: Tensor, index) -> dict:
        return {"pixel_values": pixels[index].flatten(0, 1), "image_grid_thw": self.grid_thw.repeat(len(index), 1)}

    def features(self, model, pixels: Tensor, index) -> Tensor:
        inputs = self.inputs(pixels, index)
        merged = self.tower(model)(hidden_states=inputs["pixel_values"], grid_thw=inputs["image_grid_thw"])
        return merged.pooler_output.view(len(index), self.grid**2, -1)

    def token_inputs(self, input_ids: Tensor, image_id: int) -> dict:
        return {"mm_token_type_ids": (input_ids == image_id).long()}  # M-RoPE needs to know the image tokens


FAMILIES = {family.name: family for family in (LlavaDemo(), QwenDemo(), LlavaLayerDemo())}
