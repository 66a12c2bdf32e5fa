"""Load a checkpoint's processor from whatever layout it was saved in, also without torchvision.

``AutoProcessor.from_pretrained`` covers most checkpoints. Where it cannot (in transformers 5
without torchvision, a processor with a video slot: LLaVA-OneVision, Qwen2-VL, Qwen2.5-VL,
Qwen3-VL, SmolVLM, InternVL, ... fails looking its video processor up), the processor is
assembled from its parts: the processor class named by the checkpoint (or its ``model_type``), the
image processor (nested in ``processor_config.json`` or a legacy ``preprocessor_config.json``),
the tokenizer, the processor's own settings and the chat template (``chat_template.jinja``,
``chat_template.json``, ``processor_config.json`` or the tokenizer's). Images need no video
processor, so it is left out, with a one-line warning.
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

from lvlm_heat.errors import LvlmHeatError

log = logging.getLogger(__name__)
PARTS = ("image_processor", "tokenizer")  # what explaining an image needs of a processor


def _attributes(cls: type) -> list[str]:
    """The sub-processor slots of a processor class (image_processor, tokenizer, video_processor, ...)."""
    getter = getattr(cls, "get_attributes", None)
    return list(getter()) if getter else list(getattr(cls, "attributes", PARTS))


def build_processor(cls: type, image_processor: Any, tokenizer: Any, **kwargs: Any) -> Any:
    """``cls(image_processor, tokenizer, **kwargs)`` with every other sub-processor slot (video,
    audio) left empty, skipping the class check that looks the absent ones up.

    The result saves with its own ``save_pretrained`` (the empty slots as ``null`` in
    ``processor_config.json``) and loads back with :func:`load_processor`.
    """
    parameters = inspect.signature(cls.__init__).parameters
    empty = [name for name in _attributes(cls) if name not in PARTS and name in parameters]
    for name in empty:
        kwargs.setdefault(name, None)
    processor = cls.__new__(cls)
    # ProcessorMixin.__init__ checks every sub-processor's class, and None is none: an instance
    # attribute shadows the check for the duration of __init__ only, leaving the class untouched.
    processor.check_argument_for_proper_class = lambda name, value: None
    processor.__init__(image_processor=image_processor, tokenizer=tokenizer, **kwargs)
    del processor.check_argument_for_proper_class
    filled = [name for name in _attributes(cls) if getattr(processor, name, None) is not None]
    # save_pretrained saves every slot it lists: list only the filled ones (an instance attribute again).
    processor.get_attributes = lambda: filled
    return processor


def _read_json(model: str, filename: str) -> dict:
    from transformers.utils import cached_file

    path = cached_file(model, filename, _raise_exceptions_for_missing_entries=False)
    if path is None:
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _read_text(model: str, filename: str) -> str | None:
    from transformers.utils import cached_file

    path = cached_file(model, filename, _raise_exceptions_for_missing_entries=False)
    if path is None:
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def find_chat_template(model: str, settings: dict, tokenizer: Any) -> str | dict | None:
    """The chat template, wherever the checkpoint keeps it."""
    template = _read_text(model, "chat_template.jinja")
    if template is None:
        template = _read_json(model, "chat_template.json").get("chat_template")
    if template is None:
        template = settings.get("chat_template")
    return template if template is not None else getattr(tokenizer, "chat_template", None)


def _without_torchvision(placeholder: type) -> type | None:
    """The real class behind a processor transformers offers only with torchvision.

    Such a processor's module imports helpers from its family's torchvision image-processing
    module; transformers ships the same helpers in the PIL twin (``image_processing_pil_*``). The
    module is imported with the twin standing in, for the duration of the import only.
    """
    import importlib
    import sys

    module = placeholder.__module__
    package, _, stem = module.rpartition(".")
    family = stem.removeprefix("processing_")
    stand_in = f"{package}.image_processing_{family}"
    try:
        twin = importlib.import_module(f"{package}.image_processing_pil_{family}")
    except ImportError:
        return None
    saved = sys.modules.get(stand_in)
    sys.modules[stand_in] = twin
    try:
        return getattr(importlib.import_module(module), placeholder.__name__, None)
    except ImportError:
        return None
    finally:
        if saved is None:
            sys.modules.pop(stand_in, None)
        else:
            sys.modules[stand_in] = saved


def processor_class(name: str) -> type:
    """transformers' processor class ``name``, also where transformers offers it only with torchvision.

    Raises:
        LvlmHeatError: No such class, or it needs torchvision beyond what can stand in for it.
    """
    import transformers
    from transformers.utils.import_utils import DummyObject

    cls = getattr(transformers, name, None)
    if isinstance(cls, DummyObject):
        cls = _without_torchvision(cls)
        if cls is None:
            raise LvlmHeatError(f"the processor class {name} needs torchvision here: pip install torchvision")
    if cls is None:
        raise LvlmHeatError(f"the processor class {name!r} is not in transformers {transformers.__version__}")
    return cls


def _processor_class(model: str, settings: dict, legacy: dict) -> type:
    """The processor class the checkpoint names, or the one transformers maps its ``model_type`` to."""
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = settings.get("processor_class") or legacy.get("processor_class")
    name = name or _read_json(model, "tokenizer_config.json").get("processor_class")
    model_type = _read_json(model, "config.json").get("model_type", "")
    name = name or PROCESSOR_MAPPING_NAMES.get(model_type)
    if not name:
        raise LvlmHeatError(f"cannot build the processor of {model!r}: no processor class in its files and none "
                            f"known for model type {model_type!r}")
    return processor_class(name)


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def assemble_processor(model: str, reason: str = "") -> Any:
    """The checkpoint's processor built from its parts, without video or audio processors.

    Args:
        model: Hub id or folder.
        reason: Why ``AutoProcessor`` could not load it (for the warning).
    """
    from transformers import AutoImageProcessor, AutoTokenizer

    settings = _read_json(model, "processor_config.json")
    legacy = _read_json(model, "preprocessor_config.json")
    cls = _processor_class(model, settings, legacy)
    try:
        image_processor = AutoImageProcessor.from_pretrained(model)
    except (ImportError, AttributeError, OSError, ValueError) as err:
        raise LvlmHeatError(f"cannot load the image processor of {model!r}: {_first_line(err)}") from err
    tokenizer = AutoTokenizer.from_pretrained(model)
    parameters = inspect.signature(cls.__init__).parameters
    skip = {"self", "kwargs", "chat_template", *_attributes(cls)}
    kwargs = {k: v for k, v in {**legacy, **settings}.items() if k in parameters and k not in skip}
    try:
        processor = build_processor(
            cls, image_processor, tokenizer, chat_template=find_chat_template(model, settings, tokenizer), **kwargs
        )
    except ImportError as err:  # a processor that needs a package (num2words for SmolVLM, ...)
        raise LvlmHeatError(f"cannot build the processor of {model!r}: {_first_line(err)}") from err
    log.warning("%s: built %s from its image processor and tokenizer, without video or audio processor (%s)",
                model, cls.__name__, reason or "AutoProcessor could not")
    return processor


def load_processor(model: str) -> Any:
    """``AutoProcessor.from_pretrained(model)``, or the same processor assembled from its parts.

    Raises:
        LvlmHeatError: The checkpoint has no image processor or tokenizer this transformers can load.
    """
    from transformers import AutoProcessor

    reason = ""
    try:
        processor = AutoProcessor.from_pretrained(model)
    except Exception as err:  # noqa: BLE001 (video processors without torchvision, layouts it does not read)
        processor, reason = None, _first_line(err)
    if not all(getattr(processor, part, None) is not None for part in PARTS):
        processor = assemble_processor(model, reason or f"AutoProcessor gave a {type(processor).__name__}")
    if not getattr(processor, "chat_template", None):
        processor.chat_template = find_chat_template(model, {}, processor.tokenizer)
    return processor


def save_processor(processor: Any, folder) -> None:
    """``processor.save_pretrained(folder)``: kept for callers of the earlier helper.

    Processors from :func:`build_processor` save with their own ``save_pretrained`` too.
    """
    processor.save_pretrained(folder)
