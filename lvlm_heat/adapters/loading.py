"""Which transformers class loads a checkpoint's model, whatever auto class its family is registered under.

A vision-language ``model_type`` may be registered under ``AutoModelForImageTextToText``, under
the wider ``AutoModelForMultimodalLM``, under a ``Vision2Seq``-style class of older releases, or
only name its class in ``config.json``'s ``architectures``: each is tried in that order.

And where a hub id is loaded from: the hub when it answers, else the local cache (:func:`local_checkpoint`).
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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


HUB_TIMEOUT = 3.0
"""Seconds to wait for the Hugging Face hub before taking it as unreachable."""


@functools.cache
def hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """Whether the hub (``HF_ENDPOINT``, default huggingface.co) answers a connection within ``timeout`` seconds;
    ``False`` at once when ``HF_HUB_OFFLINE`` is set. Asked once per process."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def local_checkpoint(model: str) -> str:
    """What to load ``model`` from: a local folder as it is; a hub id as it is when the hub answers, else its cached
    snapshot, so that without a network nothing waits on retries.

    Raises:
        LvlmHeatError: A hub id that is neither reachable nor in the local cache (one line, at once).
    """
    if Path(model).exists() or hub_reachable():
        return model
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model, local_files_only=True)
    except Exception as err:  # not cached, or not a valid id
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise LvlmHeatError(
            f"cannot load model {model!r}: not a local folder, not in the Hugging Face cache, and the hub cannot be "
            f"reached{offline}: check the spelling, your network, or give a folder saved with save_pretrained"
        ) from err
