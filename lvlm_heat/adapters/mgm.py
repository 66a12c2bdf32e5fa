"""Mini-Gemini (Li et al. 2024): a low-resolution CLIP encoder and a high-resolution ConvNeXt encoder.

Runs the upstream ``mgm`` package (``pip install --no-deps -e <clone of dvlab-research/MGM>``) through
:mod:`lvlm_heat.adapters.third_party.compat`, with the high-resolution input ``images_aux`` switched
on (the paper authors' published explanations left it off).

Mini-Gemini's own pipeline (``serve/cli.py``) makes one tensor, ``images_aux``: the image padded to a
square with the mean colour and resized to ``image_size_aux`` (1536 px for the HD models), normalised;
the ConvNeXt reads it. The CLIP inputs are bilinear resamplings of that tensor: one view at CLIP's size
(336 px), or for HD (``image_grid`` 2, ``image_global``) the tensor at twice that size cut into four
crops plus a global view, ``images`` ``(5, 3, 336, 336)``. Here the mask is blended into ``images_aux``
on its window, and every CLIP view is resampled from the composite exactly as the pipeline resamples the
image: one mask reaches both encoders and every crop, and the composites at mask 1 and 0 are the
pipeline's tensors for the image and the baseline.

While the checkpoint is built, and only then, the upstream class ``MGMLlamaForCausalLM`` lists the
tower and mining-projector weights (loaded afterwards) among the keys not to report as unexpected; the
class attribute is put back when ``from_pretrained`` returns or raises
(:func:`~lvlm_heat.adapters.third_party.compat.patched`). Everything else is set on the loaded network itself.
"""

from __future__ import annotations

import copy
import io
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from lvlm_heat.adapters.base import PreparedPair
from lvlm_heat.adapters.third_party import compat
from lvlm_heat.adapters.third_party.upstream import UpstreamAdapter, load_tokenizer
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.geometry import ViewWindow, sample_mask

MODULES = ("mgm.model.language_model.mgm_llama", "mgm.conversation", "mgm.mm_utils")
ALIASES = {"transformers.deepspeed": "transformers.integrations.deepspeed"}
# What the upstream loader (initialize_uni_modules) takes from the checkpoint after building the model.
UNI_WEIGHTS = ("vlm_uni", "vision_fpn", "vision_stages", "vision_stem", "vision_tower.vision_tower")


def clip_views(aux: Tensor, raw: tuple[int, int], grid: int, global_view: bool) -> Tensor:
    """The CLIP inputs Mini-Gemini resamples from its high-resolution tensor.

    Args:
        aux: ``(N, 3, S, S)`` high-resolution composites.
        raw: ``(h, w)`` of CLIP's input.
        grid: ``image_grid``: 1, or crops per side.
        global_view: ``image_global``: append the whole image at ``(h, w)`` after the crops.

    Returns:
        ``(N, 3, h, w)`` for ``grid`` 1, else ``(N, grid * grid [+ 1], 3, h, w)`` (crops row by row).
    """
    height, width = raw
    large = F.interpolate(aux, size=[height * grid, width * grid], mode="bilinear", align_corners=False)
    if grid < 2:
        return large
    crops = large.unflatten(2, (grid, height)).unflatten(4, (grid, width))  # (N, 3, g, h, g, w)
    crops = crops.permute(0, 2, 4, 1, 3, 5).flatten(1, 2)
    if global_view:
        whole = F.interpolate(large, size=[height, width], mode="bilinear", align_corners=False)
        crops = torch.cat([crops, whole[:, None]], dim=1)
    return crops


def tower_folder(path: str, checkpoint: str) -> str:
    """A tower folder named in ``config.json``: as given, or relative to the checkpoint or a folder above it."""
    candidates = [Path(path), *(base / path for base in (Path(checkpoint), *Path(checkpoint).resolve().parents))]
    for candidate in candidates:
        if candidate.is_dir():
            return str(candidate.resolve())
    raise LvlmHeatError(f"Mini-Gemini's vision tower {path!r} (named in config.json) is not a folder here, nor beside "
                        "the checkpoint: download it as MGM's README says (model_zoo/OpenAI/...), or edit config.json")


class MGMAdapter(UpstreamAdapter):
    """``MGMLlamaForCausalLM`` of the upstream package, normal or HD: one pixel tensor, ``images_aux``."""

    package = "mgm"
    model_types = ("mgm",)

    @classmethod
    def load(cls, model: str, dtype: torch.dtype, device: torch.device) -> MGMAdapter:
        """Model, towers (from the folders its config names) and mining projectors, as MGM's loader builds them."""
        llama, conversation, mm_utils = compat.import_upstream("mgm", MODULES, ALIASES)
        folder = compat.local_folder(model)
        config = llama.MGMConfig.from_pretrained(folder)
        for key in ("mm_vision_tower", "mm_vision_tower_aux"):
            if getattr(config, key, None):
                setattr(config, key, tower_folder(getattr(config, key), folder))
        if not getattr(config, "mm_vision_tower_aux", None) or not hasattr(config, "image_size_aux"):
            raise LvlmHeatError(f"{model}: not a Mini-Gemini checkpoint with a high-resolution tower "
                                "(config.json needs mm_vision_tower_aux and image_size_aux)")
        # the towers' and mining projectors' weights are loaded after the model is built: not "unexpected" keys
        # (the class attribute is read while the model is built; the instance keeps its own copy)
        ignore = [r"vision_tower", r"vlm_uni"]
        with compat.patched(llama.MGMLlamaForCausalLM, "_keys_to_ignore_on_load_unexpected", ignore):
            network = llama.MGMLlamaForCausalLM.from_pretrained(folder, config=config, dtype=dtype)
        inner = network.get_model()
        low, high = inner.get_vision_tower(), inner.get_vision_tower_aux()
        for tower in (low, high):
            if not tower.is_loaded:
                tower.load_model()
            tower.is_optimize = True  # else both towers run under no_grad; their weights stay frozen
        try:  # the stage widths are hard-coded per model name; read them off the network
            high.model_channel = [stage.blocks[-1].conv_dw.out_channels for stage in high.vision_stages]
        except (AttributeError, IndexError):
            pass
        weights = io.BytesIO()  # initialize_uni_modules reads its weights with torch.load: hand it the checkpoint's
        torch.save(compat.checkpoint_tensors(folder, UNI_WEIGHTS), weights)
        weights.seek(0)
        inner.initialize_uni_modules(types.SimpleNamespace(**config.to_dict(), pretrain_mm_mlp_adapter=weights),
                                     for_eval=True)
        for attribute in ("vision_tower", "vision_tower_aux"):
            compat.register_towers(inner, attribute)
        tokenizer = load_tokenizer(folder, network.config)
        if len(tokenizer) != network.get_input_embeddings().weight.shape[0]:
            network.resize_token_embeddings(len(tokenizer))
        network.to(device=device, dtype=dtype)
        return cls(network, tokenizer, {"conversation": conversation, "mm_utils": mm_utils}, name=model)

    @property
    def image_processor(self) -> Any:
        """CLIP's processor set to the high resolution, as MGM's command line sets it."""
        if not hasattr(self, "_processor"):
            processor = copy.deepcopy(self.model.get_model().get_vision_tower().image_processor)
            self.raw = (processor.crop_size["height"], processor.crop_size["width"])
            side = self.model.config.image_size_aux
            processor.crop_size = {"height": side, "width": side}
            processor.size = {"shortest_edge": side}
            self._processor = processor
        return self._processor

    def pixels(self, image: Image.Image) -> dict[str, Tensor]:
        """``images_aux`` ``(1, 3, S, S)``, as ``mm_utils.process_images`` makes it."""
        processor = self.image_processor
        view = image.convert("RGB")
        if getattr(self.model.config, "image_aspect_ratio", None) == "pad":
            view = self.modules["mm_utils"].expand2square(view, tuple(int(x * 255) for x in processor.image_mean))
        return {"images_aux": processor.preprocess(view, return_tensors="pt")["pixel_values"].float()}

    def place(self, image: Image.Image, prepared: PreparedPair) -> None:
        from lvlm_heat.adapters.views import resize_and_crop

        window = ViewWindow.full(image.height, image.width)
        if getattr(self.model.config, "image_aspect_ratio", None) == "pad":
            window = window.pad_to_square()
        window = resize_and_crop(self.image_processor, window)
        shape = tuple(prepared.image["images_aux"].shape[-2:])
        if shape != (window.rows, window.cols):
            raise LvlmHeatError(f"the image processor made {shape} pixels where its settings predict "
                                f"{(window.rows, window.cols)}")
        prepared.geometry = window
        prepared.guide = (prepared.image["images_aux"], window)

    def project_mask(self, mask: Tensor, prepared: PreparedPair) -> dict[str, Tensor]:
        return {"images_aux": sample_mask(mask, prepared.geometry, prepared.image_size)[:, None]}

    def views(self, aux: Tensor) -> Tensor:
        """The CLIP tower's input resampled from ``(N, 3, S, S)`` high-resolution composites."""
        self.image_processor  # noqa: B018 (sets self.raw)
        config = self.model.config
        return clip_views(aux, self.raw, getattr(config, "image_grid", 1), getattr(config, "image_global", False))

    def embed(self, input_ids: Tensor, pixels: dict[str, Tensor], image_size: tuple[int, int]) -> tuple[Tensor, Any]:
        aux = pixels["images_aux"]
        images = self.views(aux.float()).to(self.dtype)  # resampled in float32, as the pipeline does
        out = self.model.prepare_inputs_labels_for_multimodal(input_ids, None, None, None, None, images,
                                                              aux.to(self.dtype))
        return out[4], None
