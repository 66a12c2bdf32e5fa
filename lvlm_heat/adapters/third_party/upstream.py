"""What the Cambrian-1 and Mini-Gemini adapters share: LLaVA-style research models outside transformers.

Both splice image features into the token embeddings at ``IMAGE_TOKEN_INDEX`` (-200) with their own
``prepare_inputs_labels_for_multimodal`` and run a Llama decoder on the result. An
:class:`UpstreamAdapter` builds the prompt with the package's own conversation template and
``tokenizer_image_token``, scores the answer from the spliced embeddings (never through the packages'
``forward``, which reuses features that ``generate()`` stored on the model) and decodes greedily
with a key-value cache. Subclasses say how pixels become embeddings (:meth:`UpstreamAdapter.embed`)
and where the mask goes (:meth:`~lvlm_heat.adapters.Adapter.prepare`, ``project_mask``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from PIL import Image
from torch import Tensor

from lvlm_heat.adapters.base import Adapter, HFAdapter, PreparedPair, answer_log_probs_of
from lvlm_heat.errors import LvlmHeatError

IMAGE_TOKEN_INDEX = -200


class UpstreamAdapter(Adapter):
    """A model of an upstream research package, its tokenizer and its conversation template.

    Args:
        model: The ``*LlamaForCausalLM`` of the package, towers loaded and registered.
        tokenizer: Its tokenizer.
        modules: The package's ``conversation`` and ``mm_utils`` modules.
        name: The checkpoint it was loaded from.
    """

    package: ClassVar[str] = ""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, modules: dict[str, Any], name: str = "") -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.modules = modules
        self.name = name
        self.conversation = self.conversation_mode()

    # -- text -------------------------------------------------------------------------------
    def conversation_mode(self) -> str:
        """The template the checkpoint was trained with, recognised from its tokenizer's special tokens
        (the upstream command lines pick it from the checkpoint's name): Llama 3 headers, ChatML, else Vicuna."""
        vocab = self.tokenizer.get_vocab()
        templates = self.modules["conversation"].conv_templates
        if "<|eot_id|>" in vocab and "llama_3" in templates:
            return "llama_3"
        if "<|im_start|>" in vocab:
            return "chatml_direct"
        return "vicuna_v1"

    def prompt_ids(self, question: str) -> Tensor:
        """``(L,)`` prompt ids with one ``IMAGE_TOKEN_INDEX`` where the image goes."""
        conversation = self.modules["conversation"].conv_templates[self.conversation].copy()
        image = "<image>"
        if getattr(self.model.config, "mm_use_im_start_end", False):
            image = "<im_start>" + image + "<im_end>"
        conversation.append_message(conversation.roles[0], image + "\n" + question)
        conversation.append_message(conversation.roles[1], None)
        ids = self.modules["mm_utils"].tokenizer_image_token(conversation.get_prompt(), self.tokenizer,
                                                             IMAGE_TOKEN_INDEX, return_tensors="pt")
        return ids

    def encode_answer(self, answer: str) -> Tensor:
        return HFAdapter.encode_answer(self, answer)

    def token_texts(self, answer_ids: Tensor) -> tuple[list[str], list[bool]]:
        return HFAdapter.token_texts(self, answer_ids)

    def stop_ids(self) -> set[int]:
        ids = set(self.tokenizer.all_special_ids)
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        for mark in ("<|eot_id|>", "<|im_end|>", "</s>"):
            token = self.tokenizer.get_vocab().get(mark)
            if token is not None:
                ids.add(token)
        return ids

    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def enable_gradient_checkpointing(self) -> None:
        HFAdapter.enable_gradient_checkpointing(self)

    # -- model calls ------------------------------------------------------------------------
    def pixels(self, image: Image.Image) -> dict[str, Tensor]:
        """The preprocessed pixel tensors of one image, each ``(1, ...)``, in float32."""
        raise NotImplementedError

    def embed(self, input_ids: Tensor, pixels: dict[str, Tensor], image_size: tuple[int, int]) -> tuple[Tensor, Any]:
        """``(N, L', D)`` embeddings with the image features spliced in, for ``N`` rows of pixels, and
        whatever :meth:`decode` needs besides (Cambrian's aggregator inputs)."""
        raise NotImplementedError

    def decode(self, embeds: Tensor, extra: Any, image_start: int | None, cache: Any = None) -> Tensor:
        """``(N, L', D)`` final hidden states of the language model."""
        language_model = self.model.get_model()
        out = language_model(inputs_embeds=embeds, past_key_values=cache, use_cache=cache is not None)
        return out.last_hidden_state

    def _image_start(self, input_ids: Tensor) -> int:
        where = (input_ids[0] == IMAGE_TOKEN_INDEX).nonzero()
        if len(where) != 1:
            raise LvlmHeatError("the prompt must hold exactly one image; do not write <image> in the question")
        return int(where[0])

    @torch.no_grad()
    def generate(self, image: Image.Image, question: str, max_new_tokens: int) -> Tensor:
        from transformers import DynamicCache

        input_ids = self.prompt_ids(question)[None].to(self.device)
        pixels = {k: v.to(self.device) for k, v in self.pixels(image).items()}
        embeds, extra = self.embed(input_ids, pixels, (image.height, image.width))
        self._check_context(embeds.shape[1] + 1, "the image and question")
        cache = DynamicCache(config=self.model.config)
        hidden = self.decode(embeds, extra, self._image_start(input_ids), cache)
        stop, answer = self.stop_ids(), []
        for _ in range(max_new_tokens):
            token = int(self.model.lm_head(hidden[:, -1]).argmax(-1))
            if token in stop:
                break
            answer.append(token)
            step = self.model.get_model().embed_tokens(torch.tensor([[token]], device=self.device))
            hidden = self.decode(step, None, None, cache)
        return torch.tensor(answer, dtype=torch.long)

    def prepare(self, image: Image.Image, baseline: Image.Image, question: str, answer_ids: Tensor) -> PreparedPair:
        prompt = self.prompt_ids(question)
        answer_ids = answer_ids.to(prompt)
        input_ids = torch.cat([prompt, answer_ids[:-1]])[None]
        prepared = PreparedPair(
            text={"input_ids": input_ids.to(self.device)},
            image={k: v.to(self.device) for k, v in self.pixels(image).items()},
            baseline={k: v.to(self.device) for k, v in self.pixels(baseline).items()},
            answer_ids=answer_ids.to(self.device),
            image_size=(image.height, image.width),
        )
        self.place(image, prepared)
        return prepared

    def place(self, image: Image.Image, prepared: PreparedPair) -> None:
        """Fill ``prepared.geometry`` and ``prepared.guide``."""
        raise NotImplementedError

    def answer_log_probs(self, prepared: PreparedPair, pixels: dict[str, Tensor]) -> Tensor:
        count = next(iter(pixels.values())).shape[0]
        steps = prepared.answer_ids.numel()
        input_ids = prepared.text["input_ids"]
        flat = {k: v.flatten(0, 1) for k, v in pixels.items()}
        embeds, extra = self.embed(input_ids.expand(count, -1), flat, prepared.image_size)
        self._check_context(embeds.shape[1], "the image, question and answer")
        hidden = self.decode(embeds, extra, self._image_start(input_ids))
        logits = self.model.lm_head(hidden[:, -steps:])
        return answer_log_probs_of(logits, prepared.answer_ids.expand(count, steps))

    def _check_context(self, tokens: int, what: str) -> None:
        HFAdapter._check_context(self, tokens, what)


def load_tokenizer(folder: str, config: Any) -> Any:
    """The checkpoint's tokenizer, with the image tokens the upstream loaders add."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if getattr(config, "mm_use_im_patch_token", True):
        tokenizer.add_tokens(["<im_patch>"], special_tokens=True)
    if getattr(config, "mm_use_im_start_end", False):
        tokenizer.add_tokens(["<im_start>", "<im_end>"], special_tokens=True)
    return tokenizer
