"""Which transformers class loads a checkpoint's model, whatever auto class its family is registered under.

A vision-language ``model_type`` may be registered under ``AutoModelForImageTextToText``, under
the wider ``AutoModelForMultimodalLM``, under a ``Vision2Seq``-style class of older releases, or
only name its class in ``config.json``'s ``architectures``: each is tried in that order.
"""

from __future__ import annotations

from typing import Any

import torch

from lvlm_heat.errors import LvlmHeatError

AUTO_CLASSES = ("AutoModelForImageTextToText", "AutoModelForMultimodalLM", "AutoModelForVision2Seq")


def _auto_maps(config: Any) -> bool:
    import transformers

    for name in AUTO_CLASSES:
        auto = getattr(transformers, name, None)
        if auto is not None and type(config) in auto._model_mapping:
            return True
    return False


def model_class(config: Any, preferred: str = "AutoModelForImageTextToText") -> Any:
    """The class whose ``from_pretrained`` loads a checkpoint with this config.

    Args:
        config: The checkpoint's ``AutoConfig``.
        preferred: A transformers class name to try first (an adapter's ``model_class``).

    Raises:
        LvlmHeatError: No transformers class takes this config and generates text from images.
    """
    import transformers

    names = [preferred, *AUTO_CLASSES, *(getattr(config, "architectures", None) or [])]
    for name in names:
        cls = getattr(transformers, name, None) if name else None
        if cls is None:
            continue
        if not name.startswith("Auto") or type(config) in cls._model_mapping:
            return cls
    raise LvlmHeatError(
        f"model type {getattr(config, 'model_type', '?')!r} is not an image-text-to-text model in transformers "
        f"{transformers.__version__} (no {', '.join(AUTO_CLASSES[:2])} class and no known architectures in its config)"
    )


def is_vision_language(config: Any) -> bool:
    """Whether some auto class (or the config's named architecture) makes a model that reads images and writes text."""
    import transformers

    if _auto_maps(config):
        return True
    return any(
        getattr(transformers, name, None) is not None and "ForConditionalGeneration" in name
        for name in getattr(config, "architectures", None) or []
    ) and hasattr(config, "vision_config")


def load_model(model: str, dtype: torch.dtype, preferred: str = "AutoModelForImageTextToText") -> torch.nn.Module:
    """``from_pretrained`` of the class :func:`model_class` picks, in ``dtype``."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    return model_class(config, preferred).from_pretrained(model, dtype=dtype)
