"""The adapter interface: everything the explainer needs from a vision-language model.

The optimiser, the metrics and the reporting see a model only through an
:class:`Adapter`. An adapter turns an image, its baseline, a question and an answer
into a :class:`PreparedPair` (the processor's outputs, computed once), maps a coarse
mask through the processor's geometry onto every pixel tensor the model takes, and
scores the answer tokens of a batch of composite inputs.

:class:`HFAdapter` implements all of it for Hugging Face models but the geometry;
:class:`~lvlm_heat.adapters.measured.MeasuredAdapter` measures that from the processor itself,
and a family adapter writes it by hand: :meth:`HFAdapter.geometry` (where the processor put the
image, as a :class:`ProcessorGeometry`) and :meth:`Adapter.project_mask` (and, where images do
not batch by concatenating the processor's tensors, :meth:`HFAdapter.batch_inputs`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import Tensor

from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.geometry import ViewWindow

log = logging.getLogger(__name__)

# Processor outputs aligned with the tokens (one value per prompt token), extended over the answer.
TOKEN_ALIGNED = ("token_type_ids", "mm_token_type_ids")
# Processor outputs that are training targets, not model inputs (PaliGemma's processor always returns labels).
NOT_INPUTS = ("labels",)


@dataclass
class PreparedPair:
    """Everything about one image-question-answer triple that stays fixed while the mask is optimised.

    Attributes:
        text: Token inputs, ``input_ids`` and ``attention_mask`` of shape ``(1, L)``: the prompt
            followed by the answer without its last token (teacher forcing).
        image: The processor's pixel tensors for the image I, by model-input name.
        baseline: The same tensors for the baseline B (same shapes).
        fixed: Model inputs that do not depend on pixel values (``image_sizes``, grids), as the
            processor returned them for one image.
        answer_ids: ``(T,)`` answer token ids.
        image_size: ``(H, W)`` of the original image.
        geometry: Whatever the adapter needs to map a mask onto ``image`` (per-family).
        guide: An image-shaped view ``(1, C, H, W)`` of the image in the normalised space where the
            mask is applied, and its :class:`~lvlm_heat.geometry.ViewWindow`: the edges the bilateral
            TV follows.
        parts: With several images (:meth:`Adapter.prepare_images`), each image's own one-image pair,
            in order: its pixel tensors, geometry, guide and ``image_size``. Empty for one image.
        part_dims: With several images, per pixel tensor, the dimension along which the images'
            own tensors lie side by side in ``image`` (what :func:`project_masks` concatenates).
    """

    text: dict[str, Tensor]
    image: dict[str, Tensor]
    baseline: dict[str, Tensor]
    answer_ids: Tensor
    image_size: tuple[int, int]
    fixed: dict[str, Tensor] = field(default_factory=dict)
    geometry: Any = None
    guide: tuple[Tensor, ViewWindow] | None = None
    parts: list[PreparedPair] = field(default_factory=list)
    part_dims: dict[str, int] = field(default_factory=dict)

    @property
    def images(self) -> int:
        """How many images the pair holds: the mask has one channel per image."""
        return len(self.parts) or 1


@dataclass(frozen=True)
class ProcessorGeometry:
    """Where the processor put the image: what :meth:`HFAdapter.geometry` returns.

    Attributes:
        geometry: What the family's :meth:`Adapter.project_mask` reads from ``prepared.geometry``
            (a :class:`~lvlm_heat.geometry.ViewWindow`, one per view, or the family's own record).
        guide: What ``prepared.guide`` holds: an image-shaped ``(1, C, H, W)`` view in the normalised
            space where the mask is applied, and its :class:`~lvlm_heat.geometry.ViewWindow`; ``None``
            where there is none (see :meth:`HFAdapter.geometry`).
    """

    geometry: Any
    guide: tuple[Tensor, ViewWindow] | None


def blend(prepared: PreparedPair, weights: dict[str, Tensor], insertion: bool) -> dict[str, Tensor]:
    """Composites ``phi(X, Y, W) = X * W + Y * (1 - W)`` on every pixel tensor.

    Deletion keeps the image where ``W`` is high (``X = I, Y = B``); insertion swaps them.

    Args:
        prepared: The pair, with pixel tensors of shape ``S`` for one image.
        weights: Per pixel tensor, ``(N, ...)`` masks broadcastable against ``S``.
        insertion: Build ``phi(B, I, W)`` instead of ``phi(I, B, W)``.

    Returns:
        Per pixel tensor, ``(N, *S)`` composites in float32.
    """
    out = {}
    for key, weight in weights.items():
        keep, fill = prepared.image[key].float(), prepared.baseline[key].float()
        if insertion:
            keep, fill = fill, keep
        out[key] = keep * weight + fill * (1 - weight)  # exact at weight 0 and 1
    return out


def project_masks(adapter: Adapter, masks: Tensor, prepared: PreparedPair) -> dict[str, Tensor]:
    """Map ``(N, K, h, w)`` masks (one channel per image of the pair) onto every pixel tensor.

    One image: :meth:`Adapter.project_mask` itself. Several: each channel through its own image's
    geometry (``prepared.parts[k]``), the weights placed side by side as the images' tensors are
    (``prepared.part_dims``), so the adapter's geometry is only ever asked about one image.
    """
    if not prepared.parts:
        return adapter.project_mask(masks, prepared)
    pieces: dict[str, list[Tensor]] = {key: [] for key in prepared.image}
    for k, part in enumerate(prepared.parts):
        weights = adapter.project_mask(masks[:, k : k + 1], part)
        for key, found in pieces.items():
            found.append(weights[key].expand(len(masks), *part.image[key].shape))
    return {key: torch.cat(found, dim=prepared.part_dims[key] + 1) for key, found in pieces.items()}


def side_by_side(whole: dict[str, Tensor], parts: list[dict[str, Tensor]], family: str) -> dict[str, int]:
    """Per pixel tensor, the dimension along which the processor put the one-image tensors ``parts``
    side by side in the several-image tensors ``whole``.

    Raises:
        LvlmHeatError: A tensor that is not the images' own tensors side by side (the processor mixes the
            images, or treats several differently from one): one line naming the family.

    Example:
        >>> one, two = {"x": torch.zeros(1, 3)}, {"x": torch.ones(1, 3)}
        >>> side_by_side({"x": torch.cat([one["x"], two["x"]])}, [one, two], "toy")
        {'x': 0}
    """
    dims = {}
    for key, value in whole.items():
        found = [d for d in range(value.dim())
                 if all(part[key].dim() == value.dim() for part in parts)
                 and value.shape[d] == sum(part[key].shape[d] for part in parts)
                 and torch.equal(value, torch.cat([part[key].to(value) for part in parts], dim=d))]
        if not found:
            raise LvlmHeatError(f"{family} cannot explain several images: its processor does not keep each image's "
                                f"pixels apart in {key!r} (one mask per image needs them)")
        dims[key] = found[0]
    return dims


def answer_log_probs_of(logits: Tensor, targets: Tensor) -> Tensor:
    """``(N, T)`` natural-log probabilities of the answer tokens ``targets`` ``(N, T)`` under ``logits``
    ``(N, T, V)`` (taken in float32): what every adapter's :meth:`Adapter.answer_log_probs` returns.

    Raises:
        LvlmHeatError: A logit is NaN or infinite (weights holding NaN or inf, or an fp16 overflow): the
            answer's likelihood, and any map of it, would be meaningless.

    Example:
        >>> answer_log_probs_of(torch.zeros(1, 2, 4), torch.tensor([[0, 3]])).exp()
        tensor([[0.2500, 0.2500]])
    """
    if not torch.isfinite(logits).all():
        hint = ": fp16 overflows easily, try --precision bf16 or fp32" if logits.dtype == torch.float16 else \
            ": check the checkpoint's weights for NaN or inf"
        raise LvlmHeatError(f"the model's logits are not finite (NaN or inf){hint}")
    return logits.float().log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)


class Adapter(ABC):
    """What the explainer needs from a model. Subclass it to plug in any model.

    Attributes:
        model_types: ``config.model_type`` values this adapter handles (for auto-detection).
        model: The frozen model, in eval mode.
    """

    model_types: ClassVar[tuple[str, ...]] = ()
    model: torch.nn.Module
    name: str = ""

    @classmethod
    def load(cls, model: str, dtype: torch.dtype, device: torch.device) -> Adapter:
        """Load ``model`` (a path or id) in ``dtype`` onto ``device``: what ``--model`` / ``--adapter`` call."""
        raise NotImplementedError(f"{cls.__name__} does not define load(model, dtype, device)")

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass; adapters that cannot, say so."""
        raise NotImplementedError(f"{type(self).__name__} does not support gradient checkpointing")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @abstractmethod
    def generate(self, image: Image.Image, question: str, max_new_tokens: int) -> Tensor:
        """The model's greedy answer, ``(T,)`` token ids without special tokens at the end."""

    @abstractmethod
    def encode_answer(self, answer: str) -> Tensor:
        """A user-given answer as ``(T,)`` token ids, tokenised as the model would emit it."""

    @abstractmethod
    def prepare(self, image: Image.Image, baseline: Image.Image, question: str, answer_ids: Tensor) -> PreparedPair:
        """Run the processor once on the image and once on the baseline."""

    @property
    def family(self) -> str:
        """The model family, as errors name it (the checkpoint's ``model_type``, or the adapter's class)."""
        config = getattr(getattr(self, "model", None), "config", None)
        return getattr(config, "model_type", "") or type(self).__name__

    def prepare_images(self, images: list[Image.Image], baselines: list[Image.Image], question: str,
                       answer_ids: Tensor) -> PreparedPair:
        """Several images in one question (or a clip's frames, in order): the processor's outputs with every
        image, ``parts`` holding each image's own pair (see :class:`PreparedPair`). ``generate`` then
        takes the list of images too. Adapters that cannot say so (the default)."""
        raise LvlmHeatError(f"{self.family} does not take several images (or a clip's frames) in one question")

    @abstractmethod
    def project_mask(self, mask: Tensor, prepared: PreparedPair) -> dict[str, Tensor]:
        """Map ``(N, 1, h, w)`` mask cells over the original image onto every pixel tensor.

        Returns, per key of ``prepared.image``, ``(N, ...)`` weights broadcastable against it,
        so that :func:`blend` gives the composite. At mask 1 the composite must equal
        ``prepared.image`` exactly and at mask 0 ``prepared.baseline``.
        """

    @abstractmethod
    def answer_log_probs(self, prepared: PreparedPair, pixels: dict[str, Tensor]) -> Tensor:
        """``(N, T)`` natural-log probabilities of the answer tokens for ``N`` composites."""

    @abstractmethod
    def token_texts(self, answer_ids: Tensor) -> tuple[list[str], list[bool]]:
        """The text each answer token contributes (concatenated: the answer) and whether it is special."""

    def text_only_log_probs(self, question: str, answer_ids: Tensor) -> Tensor | None:
        """``(T,)`` log-probabilities of the answer tokens given the question without any image, or
        ``None`` where the model cannot answer without one (the default)."""
        return None


class HFAdapter(Adapter):
    """A Hugging Face model with its processor and chat template; geometry left to the family.

    Args:
        model: A ``*ForConditionalGeneration`` model.
        processor: Its ``AutoProcessor``.
        name: The model id or folder it was loaded from (for reports).
    """

    model_class: ClassVar[str] = "AutoModelForImageTextToText"
    # Class-name prefixes of the image processors whose geometry geometry() implements; empty: any.
    image_processor_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: torch.nn.Module, processor: Any, name: str = "") -> None:
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.name = name

    @classmethod
    def load(cls, model: str, dtype: torch.dtype, device: torch.device) -> HFAdapter:
        """``from_pretrained`` of the processor and of ``model_class`` (or the class that takes the
        checkpoint's config, see :func:`~lvlm_heat.adapters.loading.model_class`), moved to ``device``."""
        from lvlm_heat.adapters.loading import load_model
        from lvlm_heat.adapters.processors import load_processor

        processor = load_processor(model)
        network = load_model(model, dtype, cls.model_class)
        return cls(network.to(device), processor, name=model)

    def handles_processor(self) -> bool:
        """Whether :meth:`geometry` knows this checkpoint's image processor (a ``llava`` checkpoint may
        come with Pixtral's, say): :func:`~lvlm_heat.adapters.load_adapter` measures it otherwise."""
        name = type(self.processor.image_processor).__name__
        return not self.image_processor_types or name.startswith(self.image_processor_types)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each decoder / encoder layer's activations in the backward pass.

        Trades about one extra forward pass for activation memory, for large models. Hugging Face
        checkpoints only layers in training mode, so the layers' own flag is set while their
        submodules (dropout, attention) stay in eval mode: results are unchanged.
        """
        from transformers.modeling_layers import GradientCheckpointingLayer

        kwargs = {"use_reentrant": False}
        if hasattr(self.model, "activation_checkpointing_enable"):  # transformers >= 5.x
            self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        for module in self.model.modules():
            if isinstance(module, GradientCheckpointingLayer):
                module.training = True

    # -- text -----------------------------------------------------------------------------
    def chat_prompt(self, question: str, image: bool = True, images: int = 1) -> str:
        """The prompt up to where the assistant's answer starts, from the processor's chat template
        (``image=False``: the same conversation without the image; ``images``: that many images, in order)."""
        content = [{"type": "image"}] * images if image else []
        conversation = [{"role": "user", "content": [*content, {"type": "text", "text": question}]}]
        if getattr(self.processor, "chat_template", None):
            try:
                return self.processor.apply_chat_template(conversation, add_generation_prompt=True)
            except AttributeError:  # a processor's own override reading its absent video processor (SmolVLM)
                return self.tokenizer.apply_chat_template(
                    conversation, chat_template=self.processor.chat_template, add_generation_prompt=True, tokenize=False
                )
        token = (getattr(self.processor, "image_token", "<image>") + "\n") * images if image else ""
        return f"USER: {token}{question} ASSISTANT:"

    def encode_answer(self, answer: str) -> Tensor:
        ids = self.tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"]
        return torch.tensor(ids, dtype=torch.long)

    def token_texts(self, answer_ids: Tensor) -> tuple[list[str], list[bool]]:
        ids = answer_ids.tolist()
        texts, previous = [], ""
        for k in range(len(ids)):
            decoded = self.tokenizer.decode(ids[: k + 1], skip_special_tokens=False)
            texts.append(decoded[len(previous) :] if decoded.startswith(previous) else self.tokenizer.decode(ids[k]))
            previous = decoded
        special = set(self.tokenizer.all_special_ids)
        return texts, [i in special for i in ids]

    # -- model calls ----------------------------------------------------------------------
    def _inputs(self, image: Image.Image | list[Image.Image], text: str) -> dict[str, Tensor]:
        """The processor's tensors for one image, or several in one prompt (as a flat list, or as one list per
        prompt for the processors that take that)."""
        if not isinstance(image, list):
            return dict(self.processor(images=image, text=text, return_tensors="pt"))
        try:
            return dict(self.processor(images=image, text=text, return_tensors="pt"))
        except (ValueError, TypeError, IndexError):
            return dict(self.processor(images=[image], text=text, return_tensors="pt"))

    @torch.no_grad()
    def generate(self, image: Image.Image | list[Image.Image], question: str, max_new_tokens: int) -> Tensor:
        count = len(image) if isinstance(image, list) else 1
        inputs = self._inputs(image, self.chat_prompt(question, images=count))
        self._check_context(inputs["input_ids"].shape[1] + 1, "the image and question" if count == 1 else
                            f"the {count} images (or frames) and question")
        inputs = {k: self._to_device(v) for k, v in inputs.items()}
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        ids = out[0, inputs["input_ids"].shape[1] :]
        special = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), device=ids.device)
        while len(ids) and torch.isin(ids[-1], special):
            ids = ids[:-1]
        return ids.cpu()

    def prepare(self, image: Image.Image, baseline: Image.Image, question: str, answer_ids: Tensor) -> PreparedPair:
        prompt = self.chat_prompt(question)
        prepared = self._assemble(self._inputs(image, prompt), self._inputs(baseline, prompt), answer_ids,
                                  (image.height, image.width))
        placed = self.geometry(image, prepared)
        prepared.geometry, prepared.guide = placed.geometry, placed.guide
        return prepared

    def prepare_images(self, images: list[Image.Image], baselines: list[Image.Image], question: str,
                       answer_ids: Tensor) -> PreparedPair:
        """Every image in one prompt; each image's geometry is the one :meth:`prepare` finds for it alone, and
        the processor must put the images' own tensors side by side (:func:`side_by_side`), as it does for the
        image lists of LLaVA, Qwen2-VL and most others."""
        prompt = self.chat_prompt(question, images=len(images))
        try:
            with_images, with_baselines = self._inputs(images, prompt), self._inputs(baselines, prompt)
        except (ValueError, TypeError, IndexError, RuntimeError) as err:
            raise LvlmHeatError(f"{self.family} does not take several images in one question: its processor "
                                f"refused {len(images)} ({type(err).__name__}: {str(err).strip()[:80]})") from err
        prepared = self._assemble(with_images, with_baselines, answer_ids, (images[0].height, images[0].width),
                                  f"the {len(images)} images (or frames), question and answer")
        prepared.parts = [self.prepare(image, baseline, question, answer_ids)
                          for image, baseline in zip(images, baselines)]
        prepared.part_dims = side_by_side(prepared.image, [part.image for part in prepared.parts], self.family)
        prepared.guide = prepared.parts[0].guide
        return prepared

    def _assemble(self, with_image: dict[str, Tensor], with_baseline: dict[str, Tensor], answer_ids: Tensor,
                  size: tuple[int, int], what: str = "the image, question and answer") -> PreparedPair:
        """The pair of the processor's outputs for the image(s) and the baseline(s), the answer appended to the
        prompt; its geometry is left to the caller."""
        pixel_keys = [k for k in with_image if k.startswith("pixel_values") or k.endswith("pixel_values")]
        text_keys = ("input_ids", "attention_mask", *TOKEN_ALIGNED)
        prompt_ids = with_image["input_ids"]
        if not torch.equal(prompt_ids, with_baseline["input_ids"]):
            raise RuntimeError("the processor tokenised the prompt differently for the image and the baseline")
        answer_ids = answer_ids.to(prompt_ids)
        input_ids = torch.cat([prompt_ids, answer_ids[None, :-1]], dim=1)
        self._check_context(input_ids.shape[1], what)
        text = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        for key in TOKEN_ALIGNED:  # per-token tags of the prompt, extended over the answer as generate() does
            if key in with_image:
                text[key] = self.answer_tags(key, with_image[key], answer_ids.numel() - 1)
        fixed = {k: v for k, v in with_image.items() if k not in (*pixel_keys, *text_keys, *NOT_INPUTS)}
        return PreparedPair(
            text={k: self._to_device(v) for k, v in text.items()},
            image={k: self._to_device(with_image[k]).float() for k in pixel_keys},
            baseline={k: self._to_device(with_baseline[k]).float() for k in pixel_keys},
            answer_ids=self._to_device(answer_ids),
            image_size=size,
            fixed={k: self._to_device(v) for k, v in fixed.items()},
        )

    def answer_tags(self, key: str, tags: Tensor, count: int) -> Tensor:
        """Per-token tags ``(1, L)`` of the prompt extended by ``count`` answer tokens: ``(1, L + count)``.

        The model's own generation rule decides (``_update_model_kwargs_for_generation``, one token
        at a time), so the answer is scored as generate() produced it: plain text (0) for most
        models, the causal suffix (1) for PaliGemma's prefix-LM. Models without it get zeros.
        """
        from transformers.utils import ModelOutput

        update = getattr(self.model, "_update_model_kwargs_for_generation", None)
        extended = {key: tags}
        try:
            for _ in range(count):
                extended = update(ModelOutput(), {key: extended[key]}, num_new_tokens=1)
        except (TypeError, KeyError, RuntimeError):
            extended = {key: torch.cat([tags, tags.new_zeros(1, count)], dim=1)}
        return extended[key]

    def geometry(self, image: Image.Image, prepared: PreparedPair) -> ProcessorGeometry:
        """Where the processor put ``image``: what :meth:`project_mask` needs, and the TV guide.

        Called once by :meth:`prepare`, which stores the result's fields in ``prepared.geometry``
        and ``prepared.guide``; ``prepared`` is only read. The default records no geometry and
        guides with the first pixel tensor when it is image-shaped, ``(1, C, h, w)``, taken to
        span the whole image. Override it where that tensor is not image-shaped (tiles, flattened
        patches) or is padded or cropped: the explainer reads the guide, and its edges line up
        with the mask only through an exact window.

        Args:
            image: The original image, ``H x W``.
            prepared: The pair, its pixel tensors and ``fixed`` inputs filled in.

        Returns:
            The geometry and the guide (``None`` when the default finds no image-shaped tensor).
        """
        pixels = next(iter(prepared.image.values()), None)
        if pixels is None or pixels.dim() != 4:
            return ProcessorGeometry(None, None)
        window = ViewWindow.full(image.height, image.width).resize(*pixels.shape[-2:])
        return ProcessorGeometry(None, (pixels[:1], window))

    def batch_inputs(self, prepared: PreparedPair, pixels: dict[str, Tensor], count: int) -> dict[str, Tensor]:
        """Model keyword inputs for ``count`` composites whose pixel tensors are ``(count, *S)``.

        The default suits processors whose pixel tensors carry a batch dimension of one.
        """
        inputs = {k: v.flatten(0, 1).to(self.dtype) for k, v in pixels.items()}
        inputs.update({k: v.expand(count, *v.shape[1:]) for k, v in prepared.text.items()})
        inputs.update({k: v.repeat(count, *([1] * (v.dim() - 1))) for k, v in prepared.fixed.items()})
        return inputs

    def answer_log_probs(self, prepared: PreparedPair, pixels: dict[str, Tensor]) -> Tensor:
        count = next(iter(pixels.values())).shape[0]
        steps = prepared.answer_ids.numel()
        inputs = self.batch_inputs(prepared, pixels, count)
        logits = self.model(**inputs, logits_to_keep=steps, use_cache=False).logits[:, -steps:]
        return answer_log_probs_of(logits, prepared.answer_ids.expand(count, steps))

    @torch.no_grad()
    def text_only_log_probs(self, question: str, answer_ids: Tensor) -> Tensor | None:
        """The answer scored after the chat prompt without the image; ``None`` where the processor or
        the model refuses a prompt without one (PaliGemma, say)."""
        try:
            prompt = self.processor(text=self.chat_prompt(question, image=False), return_tensors="pt")["input_ids"]
            answer = answer_ids.to(prompt)
            input_ids = self._to_device(torch.cat([prompt, answer[None, :-1]], dim=1))
            steps = answer.numel()
            logits = self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), logits_to_keep=steps,
                                use_cache=False).logits[:, -steps:]
        except Exception as error:  # noqa: BLE001 - any refusal means: this model needs an image
            log.info("no text-only score for %s: %s", self.name or type(self).__name__, error)
            return None
        return answer_log_probs_of(logits, self._to_device(answer)[None])[0].cpu()

    def context_length(self) -> int | None:
        """The most tokens the language model takes (``max_position_embeddings``), if its config says."""
        config = self.model.config
        text = getattr(config, "text_config", None) or config
        return getattr(text, "max_position_embeddings", None)

    def _check_context(self, tokens: int, what: str) -> None:
        """One clear error instead of an empty answer or an index error deep in the model."""
        limit = self.context_length()
        if limit is not None and tokens > limit:
            several = "; fewer images or frames (--video.frames)" if "images" in what else ""
            raise LvlmHeatError(f"{what} take {tokens} tokens, more than the model's context of {limit}: "
                                f"shorten the question (or the answer){several}")

    def _to_device(self, value: Any) -> Any:
        return value.to(self.device) if isinstance(value, Tensor) else value
