"""Model-family adapters and the registry that picks one for a checkpoint.

``load_adapter("llava-hf/llava-1.5-7b-hf")`` reads the checkpoint's config, finds the
adapter registered for its ``model_type`` and loads model and processor with
``from_pretrained``. A vision-language ``model_type`` without one gets the
:class:`MeasuredAdapter`, which measures the geometry from the checkpoint's own processor.
Register your own with :func:`register_adapter`.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace
from pathlib import Path

import torch

from lvlm_heat.adapters.anyres import AnyResAdapter
from lvlm_heat.adapters.base import Adapter, HFAdapter, PreparedPair, ProcessorGeometry, blend
from lvlm_heat.adapters.deepseek_vl import DeepseekVLHybridAdapter
from lvlm_heat.adapters.llava import LlavaAdapter
from lvlm_heat.adapters.loading import is_vision_language, local_checkpoint
from lvlm_heat.adapters.measured import MeasuredAdapter, PaliGemmaAdapter
from lvlm_heat.adapters.qwen_vl import QwenVLAdapter
from lvlm_heat.config import ModelConfig, Precision
from lvlm_heat.errors import LvlmHeatError

ADAPTERS: dict[str, type[Adapter]] = {}
log = logging.getLogger(__name__)


def register_adapter(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: use ``cls`` for every ``model_type`` it lists."""
    for model_type in cls.model_types:
        ADAPTERS[model_type] = cls
    return cls


register_adapter(LlavaAdapter)
register_adapter(AnyResAdapter)
register_adapter(QwenVLAdapter)
register_adapter(DeepseekVLHybridAdapter)
register_adapter(PaliGemmaAdapter)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise LvlmHeatError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise LvlmHeatError(f"device {device!r} asked for, but no CUDA GPU is available: use --device cpu")
    return resolved


def resolve_dtype(precision: Precision, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a GPU that supports it, fp16 on other GPUs, fp32 on the CPU."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in table:
        raise LvlmHeatError(f"unknown precision {precision!r}: use one of auto, fp32, bf16, fp16")
    return table[precision]


def _read_config(model: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as err:
        if Path(model).exists():
            raise LvlmHeatError(
                f"{model} is not a Hugging Face model folder (no readable config.json): save one with save_pretrained"
            ) from err
        raise LvlmHeatError(
            f"cannot load model {model!r}: not a local folder, and not a hub id that could be fetched "
            "(check the spelling, your network or HF_HOME cache, or give a folder saved with save_pretrained)"
        ) from err


# Research models run through their upstream packages (imported on use): --adapter NAME, or their model_type.
THIRD_PARTY = {"cambrian": "lvlm_heat.adapters.cambrian.CambrianAdapter", "mgm": "lvlm_heat.adapters.mgm.MGMAdapter"}
THIRD_PARTY_TYPES = {"cambrian_llama": "cambrian", "mgm": "mgm"}


def _third_party_type(model: str) -> str | None:
    """``cambrian`` or ``mgm`` when the checkpoint's config.json names such a model_type (transformers knows neither)."""
    from transformers import PretrainedConfig

    try:
        return THIRD_PARTY_TYPES.get(PretrainedConfig.get_config_dict(model)[0].get("model_type"))
    except (OSError, ValueError):
        return None


def _adapter_class(adapter: str | None, model: str) -> type[Adapter]:
    adapter = THIRD_PARTY.get(adapter or _third_party_type(model) or "", adapter)
    if adapter:
        module, _, name = adapter.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as err:
            raise LvlmHeatError(f"cannot import adapter {adapter!r}: give it as 'package.module.ClassName'") from err
    config = _read_config(model)
    model_type = getattr(config, "model_type", "")
    if model_type in ADAPTERS:
        return ADAPTERS[model_type]
    if is_vision_language(config):
        return MeasuredAdapter
    raise LvlmHeatError(
        f"no adapter for {model!r} (model type {model_type!r}): not an image-text-to-text model in transformers. "
        f"Family adapters: {', '.join(sorted(ADAPTERS))}; any other vision-language model gets the measured one. "
        "For a model outside transformers write an adapter (docs/models.md, 'Add your own model') and pass --adapter"
    )


def check_model(model: ModelConfig) -> None:
    """Fail early, with one line, for a model that cannot be found or has no adapter."""
    _adapter_class(model.adapter, local_checkpoint(model.checkpoint))


def load_adapter(model: ModelConfig | str = "demo", **settings) -> Adapter:
    """Load a checkpoint (hub id or local folder) with the adapter for its family.

    Args:
        model: What to load: a :class:`~lvlm_heat.config.ModelConfig`, or the ``model`` of one (hub id, folder
            saved with ``save_pretrained``, or a demo model's name).
        settings: Other fields of :class:`~lvlm_heat.config.ModelConfig` (``precision``, ``device``, ``adapter``,
            ``gradient_checkpointing``), overriding ``model``'s.

    Example:
        ``load_adapter("llava-hf/llava-1.5-7b-hf", precision="bf16", device="cuda")``
    """
    config = replace(model, **settings) if isinstance(model, ModelConfig) else ModelConfig(str(model), **settings)
    checkpoint = local_checkpoint(config.checkpoint)
    cls = _adapter_class(config.adapter, checkpoint)
    target = resolve_device(config.device)
    try:
        loaded = cls.load(checkpoint, dtype=resolve_dtype(config.precision, target), device=target)
    except LvlmHeatError:
        raise
    except Exception as err:  # corrupt or truncated weights, a config that does not match them, a broken adapter
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if "mismatched_sizes" in first:
            first = "the weights' shapes do not match the model's config.json"
        raise LvlmHeatError(
            f"cannot load {checkpoint!r}: {type(err).__name__}: {first} (LVLM_HEAT_DEBUG=1 shows the full traceback)"
        ) from err
    if isinstance(loaded, HFAdapter) and not loaded.handles_processor():
        log.info("%s: %s does not know %s: measuring its geometry instead", checkpoint, cls.__name__,
                 type(loaded.processor.image_processor).__name__)
        loaded = MeasuredAdapter(loaded.model, loaded.processor, name=checkpoint)
    if config.gradient_checkpointing:
        loaded.enable_gradient_checkpointing()
    loaded.name = config.checkpoint  # a hub id read from the cache keeps its name
    return loaded


__all__ = [
    "ADAPTERS",
    "Adapter",
    "AnyResAdapter",
    "DeepseekVLHybridAdapter",
    "HFAdapter",
    "LlavaAdapter",
    "MeasuredAdapter",
    "PaliGemmaAdapter",
    "PreparedPair",
    "ProcessorGeometry",
    "QwenVLAdapter",
    "blend",
    "check_model",
    "load_adapter",
    "register_adapter",
    "resolve_device",
    "resolve_dtype",
]
