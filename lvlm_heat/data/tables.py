"""Generic tables of pairs: JSONL, a JSON list or CSV/TSV, with configurable field names."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from lvlm_heat.config import DataConfig
from lvlm_heat.data.pairs import Box, Pair
from lvlm_heat.data.records import (
    RecordError,
    pairs_from,
    read_records,
    reference_fields,
    require_fields,
    required_field,
    short,
    text_field,
)

_BOX = "a bbox is 4 numbers [left, top, right, bottom]"


def _json_text(value: str, what: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise RecordError(f"the {what} is not valid JSON ({err.msg}): {short(value)}") from err


def parse_bbox(value: Any) -> Box | None:
    """A box from a list, or text such as ``[1, 2, 3, 4]`` or ``1 2 3 4``; ``None`` when absent.

    Raises:
        RecordError: Not four finite numbers with ``right > left`` and ``bottom > top`` (an
            ``[x, y, width, height]`` box often fails this, rather than silently meaning another box).
    """
    if value is None or value == [] or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        value = _json_text(text, "bbox") if text.startswith("[") else re.split(r"[\s,]+", text)
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise RecordError(f"{_BOX}, got {short(value)}")
    try:
        if any(isinstance(v, bool) for v in value):
            raise TypeError("a boolean")
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise RecordError(f"{_BOX}, got {short(value)}") from err
    if not all(math.isfinite(v) for v in box):
        raise RecordError(f"{_BOX} (finite), got {short(value)}")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise RecordError(f"{_BOX} with right > left and bottom > top, got {short(value)}")
    return box


def parse_options(value: Any) -> tuple[str, ...]:
    """Answer options from a list, JSON text (``["cat", "dog"]``) or ``cat | dog``; ``()`` when absent."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    if isinstance(value, str):
        value = _json_text(value, "options") if value.strip().startswith("[") else value.split("|")
    if not isinstance(value, (list, tuple)) or any(isinstance(v, (dict, list)) for v in value):
        raise RecordError(f"options are a list of texts, got {short(value)}")
    return tuple(str(v).strip() for v in value)


def image_list(fields: dict[str, Any], name: str) -> list[str]:
    """A record's image paths: one text, or a list of them (a question about several images)."""
    value = fields.get(name)
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise RecordError(f"the {name!r} field is a list: it must hold image paths, got {short(value)}")
        return [v.strip() for v in value]
    return [required_field(fields, name, " (set --data.image_field)")]


def read_table(path: Path, kind: str, config: DataConfig, root: Path) -> list[Pair]:
    """The pairs of a ``jsonl``, ``json`` or ``csv`` file with ``config``'s field names, one per record.

    The answer column is the pair's ``reference``; it is also its ``answer`` (the one explained) only
    with ``config.explain_reference``. A record without an image or question, or with a bad bbox or
    options, is a pair with ``error`` (see :mod:`lvlm_heat.data.records`).
    """
    records = read_records(path, kind)
    readable = [record.fields for record in records if record.fields is not None]
    if not any(config.video_field in fields for fields in readable):  # a clip stands in for the image
        require_fields(path, records, (config.image_field, "set --data.image_field"))
    require_fields(path, records, (config.question_field, "set --data.question_field"))

    def build(fields: dict[str, Any]) -> Pair:
        question = required_field(fields, config.question_field, " (set --data.question_field)")
        common = dict(id=own_id(fields), question=question, bbox=parse_bbox(fields.get(config.bbox_field)),
                      options=parse_options(fields.get(config.options_field)),
                      **reference_fields(text_field(fields, config.answer_field), config.explain_reference))
        video = text_field(fields, config.video_field)
        if video is not None and fields.get(config.image_field) in (None, "", []):
            return Pair(image=None, video=root / video, **common)
        images = image_list(fields, config.image_field)
        return Pair(image=root / images[0], extra_images=tuple(root / image for image in images[1:]), **common)

    def own_id(fields: dict[str, Any]) -> str | None:
        value = fields.get(config.image_field)
        first = value[0] if isinstance(value, list) and value and isinstance(value[0], str) else \
            text_field(fields, config.image_field) if not isinstance(value, list) else None
        clip = None if first else text_field(fields, config.video_field)
        return text_field(fields, config.id_field) or (Path(first or clip).stem if first or clip else None)

    return pairs_from(records, build, own_id)
