"""Cambrian-1 (Tong et al. 2024): four vision encoders joined by a Spatial Vision Aggregator inside the LLM.

Runs the upstream ``cambrian`` package (``pip install --no-deps -e <clone of cambrian-mllm/cambrian>``)
through :mod:`lvlm_heat.adapters.third_party.compat`. ``cambrian-8b`` reads each image four times:
SigLIP at 384 px, CLIP ViT-L at 336, DINOv2 at 378 and a ConvNeXt-XXL at 1024 px. Each tower's input is
the image padded to a square with that tower's mean colour and resized to its side
(``mm_utils.process_images``), then its own processor; so one mask, sampled on each tower's window,
gives every tower its own composite, blended in its own normalisation. The features of all four reach
the language model through the connector and again through the aggregator layers inside the decoder,
so gradients reach the mask through every tower.

While the checkpoint is built, and only then, the upstream ``cambrian_arch.build_vision_tower_aux_list``
is replaced by a wrapper that gives delayed towers the hidden sizes of the checkpoint's projectors; it
is put back when ``from_pretrained`` returns or raises (:func:`~lvlm_heat.adapters.third_party.compat.patched`).
Everything else is set on the loaded network itself.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from lvlm_heat.adapters.base import PreparedPair
from lvlm_heat.adapters.third_party import compat
from lvlm_heat.adapters.third_party.upstream import UpstreamAdapter, load_tokenizer
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.geometry import ViewWindow, sample_mask

log = logging.getLogger(__name__)
MODULES = ("cambrian.model.language_model.cambrian_llama", "cambrian.model.cambrian_arch", "cambrian.conversation",
           "cambrian.mm_utils")


class CambrianAdapter(UpstreamAdapter):
    """``CambrianLlamaForCausalLM`` of the upstream package: one pixel tensor per vision tower."""

    package = "cambrian"
    model_types = ("cambrian_llama",)

    @classmethod
    def load(cls, model: str, dtype: torch.dtype, device: torch.device) -> CambrianAdapter:
        """The checkpoint, its towers (loaded by their hub names, as upstream does) and its tokenizer."""
        llama, arch, conversation, mm_utils = compat.import_upstream("cambrian", MODULES)
        folder = compat.local_folder(model)
        shapes = compat.checkpoint_shapes(folder)
        build = arch.build_vision_tower_aux_list

        def towers_with_checkpoint_widths(config, **kwargs):  # delayed SigLIP / ConvNeXt hard-code their widths
            towers = build(config, **kwargs)
            for index, tower in enumerate(towers):
                shape = shapes.get(f"model.mm_projector_aux_{index}.0.weight")
                if shape and not tower.is_loaded:
                    tower._hidden_size = shape[1]
            return towers

        with compat.patched(arch, "build_vision_tower_aux_list", towers_with_checkpoint_widths):
            network = llama.CambrianLlamaForCausalLM.from_pretrained(folder, dtype=dtype)
        inner = network.get_model()
        for tower in inner.get_vision_tower_aux_list():
            if not tower.is_loaded:
                tower.load_model()
            tower.unfreeze_mm_vision_tower = True  # else each tower runs under no_grad; weights stay frozen
        compat.register_towers(inner, "vision_tower_aux_list")
        tokenizer = load_tokenizer(folder, network.config)
        if len(tokenizer) != network.get_input_embeddings().weight.shape[0]:
            network.resize_token_embeddings(len(tokenizer))
        network.to(device=device, dtype=dtype)
        return cls(network, tokenizer, {"conversation": conversation, "mm_utils": mm_utils}, name=model)

    def prompt_ids(self, question: str) -> Tensor:
        """The upstream prompt; the aggregator reads the image where it is in it (warned if not where trained)."""
        ids = super().prompt_ids(question)
        trained = getattr(self.model.config, "image_position", None)
        where = int((ids == -200).nonzero()[0]) if (ids == -200).any() else None
        if trained is not None and where is not None and where != trained and not getattr(self, "_warned", False):
            log.warning("the image is token %d of the prompt, the checkpoint was trained with it at %d "
                        "(config.image_position)", where, trained)
            self._warned = True
        return ids

    @property
    def towers(self) -> list[Any]:
        return list(self.model.get_model().get_vision_tower_aux_list())

    def pixels(self, image: Image.Image) -> dict[str, Tensor]:
        """Per tower, ``images_i`` of shape ``(1, 3, S_i, S_i)``, as ``mm_utils.process_images`` makes them."""
        expand2square = self.modules["mm_utils"].expand2square
        out = {}
        for index, tower in enumerate(self.towers):
            processor, view = tower.image_processor, image.convert("RGB")
            if hasattr(processor, "image_mean"):
                side = processor.crop_size["height"]
                view = expand2square(view, tuple(int(x * 255) for x in processor.image_mean)).resize((side, side))
            out[f"images_{index}"] = processor.preprocess(view, return_tensors="pt")["pixel_values"][0][None].float()
        return out

    def place(self, image: Image.Image, prepared: PreparedPair) -> None:
        """A window per tower: pad to a square, resize to the tower's side; the first tower guides the TV."""
        windows = {}
        for index, tower in enumerate(self.towers):
            key, processor = f"images_{index}", tower.image_processor
            window = ViewWindow.full(image.height, image.width)
            if hasattr(processor, "image_mean"):
                side = processor.crop_size["height"]
                window = window.pad_to_square().resize(side, side)
            shape = tuple(prepared.image[key].shape[-2:])
            if shape != (window.rows, window.cols):
                raise LvlmHeatError(f"tower {index} ({type(tower).__name__}): its processor made {shape} pixels of a "
                                    f"{window.rows} x {window.cols} view; only processors that keep it are supported")
            windows[key] = window
        prepared.geometry = windows
        prepared.guide = (prepared.image["images_0"], windows["images_0"])

    def project_mask(self, mask: Tensor, prepared: PreparedPair) -> dict[str, Tensor]:
        return {key: sample_mask(mask, window, prepared.image_size)[:, None]  # (N, 1, 1, S, S) against (1, 3, S, S)
                for key, window in prepared.geometry.items()}

    def embed(self, input_ids: Tensor, pixels: dict[str, Tensor], image_size: tuple[int, int]) -> tuple[Tensor, Any]:
        images = [pixels[f"images_{index}"].to(self.dtype) for index in range(len(pixels))]
        count = images[0].shape[0]
        sizes = [(image_size[1], image_size[0])] * count  # PIL's (width, height), as upstream passes image.size
        out = self.model.prepare_inputs_labels_for_multimodal(input_ids, None, None, None, None, images,
                                                              image_sizes=sizes)
        embeds, sva = out[4], out[6:10]
        return embeds, (sva if sva[0] is not None else None)

    def decode(self, embeds: Tensor, extra: Any, image_start: int | None, cache: Any = None) -> Tensor:
        return compat.cambrian_decoder(self.model.get_model(), embeds, image_start, extra, cache)
