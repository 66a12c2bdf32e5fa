"""Load a checkpoint's processor, also on machines without torchvision.

In transformers 5, processors with a video slot (LLaVA-OneVision, Qwen2-VL, Qwen2.5-VL,
...) cannot be built through ``AutoProcessor`` without torchvision: the video processor
lookup fails. Images need no video processor, so such a processor is then built from the
checkpoint's image processor and tokenizer, with a one-line warning.
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

log = logging.getLogger(__name__)


def build_processor(cls: type, image_processor: Any, tokenizer: Any, **kwargs: Any) -> Any:
    """``cls(image_processor, tokenizer, video_processor=None, **kwargs)``, skipping the class check
    that looks the (absent) video processor class up."""
    parameters = inspect.signature(cls.__init__).parameters
    if "video_processor" in parameters:
        kwargs.setdefault("video_processor", None)
    processor = cls.__new__(cls)
    # ProcessorMixin.__init__ checks every sub-processor's class, and None is no video processor: an
    # instance attribute shadows the check for the duration of __init__ only, leaving the class untouched.
    processor.check_argument_for_proper_class = lambda name, value: None
    processor.__init__(image_processor=image_processor, tokenizer=tokenizer, **kwargs)
    del processor.check_argument_for_proper_class
    return processor


def _read_json(model: str, filename: str) -> dict:
    from transformers.utils import cached_file

    path = cached_file(model, filename, _raise_exceptions_for_missing_entries=False)
    if path is None:
        return {}
    with open(path) as handle:
        return json.load(handle)


def load_processor(model: str) -> Any:
    """``AutoProcessor.from_pretrained(model)``, or its image-only equivalent without torchvision."""
    import transformers
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(model)
    except (AttributeError, ImportError) as err:
        if not any(sign in str(err) for sign in ("VIDEO_PROCESSOR", "VideoProcessor", "orchvision")):
            raise
    config = _read_json(model, "processor_config.json")
    cls = getattr(transformers, config.get("processor_class", ""), None)
    if cls is None:
        raise OSError(f"cannot build the processor of {model}: no processor_class in processor_config.json")
    parameters = inspect.signature(cls.__init__).parameters
    attributes = {"image_processor", "tokenizer", "video_processor", "chat_template"}
    kwargs = {k: v for k, v in config.items() if k in parameters and k not in attributes}
    tokenizer = AutoTokenizer.from_pretrained(model)
    processor = build_processor(
        cls, AutoImageProcessor.from_pretrained(model), tokenizer, chat_template=tokenizer.chat_template, **kwargs
    )
    if processor.chat_template is None:
        from transformers.utils import cached_file

        path = cached_file(model, "chat_template.jinja", _raise_exceptions_for_missing_entries=False)
        if path is not None:
            with open(path) as handle:
                processor.chat_template = handle.read()
    log.warning(
        "%s: built %s without a video processor (torchvision is not installed); images work", model, cls.__name__
    )
    return processor


def save_processor(processor: Any, folder) -> None:
    """``processor.save_pretrained(folder)``; for a processor built without its video processor,
    the files a checkpoint has for it (image processor, tokenizer, ``processor_config.json``,
    chat template), which :func:`load_processor` reads back."""
    from pathlib import Path

    if getattr(processor, "video_processor", "absent") is not None:
        processor.save_pretrained(folder)
        return
    processor.image_processor.save_pretrained(folder)
    processor.tokenizer.save_pretrained(folder)
    config = {"processor_class": type(processor).__name__}
    for name in inspect.signature(type(processor).__init__).parameters:
        if name not in ("self", "image_processor", "tokenizer", "video_processor", "chat_template", "kwargs"):
            value = getattr(processor, name, None)
            if isinstance(value, (int, float, str, list)):
                config[name] = value
    Path(folder, "processor_config.json").write_text(json.dumps(config, indent=2))
    if processor.chat_template:
        Path(folder, "chat_template.jinja").write_text(processor.chat_template)
