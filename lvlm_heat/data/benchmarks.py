"""The paper's benchmarks, in the layouts their authors publish (download them yourself; nothing is fetched).

- ``cvbench``: CV-Bench's ``test_2d.jsonl`` / ``test_3d.jsonl`` / ``test.jsonl`` (``idx``, ``type``,
  ``image``, ``question``, ``choices``, ``answer`` like ``"(C)"``), images relative to the folder;
- ``mmvp``: MMVP's ``Questions.csv`` (``Index`` or ``lndex``, ``Question``, ``Options`` like
  ``"(a) Open (b) Closed"``, ``Correct Answer``) with images in ``MMVP Images/<index>.jpg``;
- ``mmstar``: the MMStar TSV (``index``, ``question``, ``answer``, ``category``, ``image`` as base64);
- ``llava_bench``: LLaVA-Bench in-the-wild's ``questions.jsonl`` (``question_id``, ``image``,
  ``text``) with images in ``images/``.

Multiple-choice benchmarks carry their options; with ``multiple_choice`` the prompt lists
them and asks for the letter (docs/method.md, 'Token selection' says how a one-token answer is kept). Their
answers are the pairs' ``reference`` (explained instead of the model's only with ``explain_reference``),
and a bad record is a pair with ``error``, as for the generic tables.
"""

from __future__ import annotations

import base64
import binascii
import csv
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
    text_field,
)
from lvlm_heat.data.tables import parse_bbox, parse_options
from lvlm_heat.errors import LvlmHeatError


def _single_box(value: Any) -> Box | None:
    """CV-Bench's box when it gives one; its relation and distance records list a box per object instead."""
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return None
    return parse_bbox(value)


def read_cvbench(folder: Path, root: Path, config: DataConfig) -> list[Pair]:
    files = [folder / name for name in ("test_2d.jsonl", "test_3d.jsonl") if (folder / name).is_file()]
    files = files or ([folder / "test.jsonl"] if (folder / "test.jsonl").is_file() else [])
    if not files:
        raise LvlmHeatError(f"{folder}: no CV-Bench test_2d.jsonl, test_3d.jsonl or test.jsonl")

    def own_id(fields: dict[str, Any]) -> str:
        return f"{text_field(fields, 'type') or 'cv'}_{required_field(fields, 'idx')}".lower()

    def build(fields: dict[str, Any]) -> Pair:
        return Pair(id=own_id(fields), image=root / required_field(fields, "image"),
                    question=required_field(fields, "question"), bbox=_single_box(fields.get("bbox")),
                    options=parse_options(fields.get("choices")),
                    **reference_fields(text_field(fields, "answer"), config.explain_reference))

    pairs = []
    for file in files:
        records = read_records(file, "jsonl", named=len(files) > 1)
        require_fields(file, records, ("image", "not the CV-Bench layout?"), ("question", "not the CV-Bench layout?"))
        pairs += pairs_from(records, build, own_id)
    return pairs


def read_mmvp(folder: Path, root: Path, config: DataConfig) -> list[Pair]:
    table = folder / "Questions.csv"
    if not table.is_file():
        raise LvlmHeatError(f"{folder}: no MMVP Questions.csv")
    records = read_records(table, "csv")
    require_fields(table, records, ("Question", "not the MMVP layout?"), ("Options", "not the MMVP layout?"))

    def own_id(fields: dict[str, Any]) -> str:
        index = text_field(fields, "Index") or text_field(fields, "lndex")  # the published file spells it "lndex"
        if index is None:
            raise RecordError("no 'Index' (or 'lndex') field")
        return f"mmvp_{index.strip()}"

    def build(fields: dict[str, Any]) -> Pair:
        name = own_id(fields)
        options = tuple(o.strip() for o in re.split(r"\([a-z]\)", required_field(fields, "Options")) if o.strip())
        return Pair(id=name, image=root / "MMVP Images" / f"{name.removeprefix('mmvp_')}.jpg",
                    question=required_field(fields, "Question").strip(), options=options,
                    **reference_fields(text_field(fields, "Correct Answer"), config.explain_reference))

    return pairs_from(records, build, own_id)


def _base64_image(fields: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(required_field(fields, "image"), validate=True)
    except binascii.Error as err:
        raise RecordError(f"the 'image' field is not valid base64 ({err})") from err


def read_mmstar(path: Path, config: DataConfig) -> list[Pair]:
    path = path / "MMStar.tsv" if path.is_dir() else path
    csv.field_size_limit(2**31 - 1)  # the base64 images are far above csv's default limit of 128 kB
    records = read_records(path, "csv")
    require_fields(path, records, ("image", "not the MMStar layout?"), ("question", "not the MMStar layout?"))

    def own_id(fields: dict[str, Any]) -> str:
        return f"mmstar_{required_field(fields, 'index')}"

    def build(fields: dict[str, Any]) -> Pair:
        return Pair(id=own_id(fields), image=_base64_image(fields), question=required_field(fields, "question").strip(),
                    **reference_fields(text_field(fields, "answer"), config.explain_reference))

    return pairs_from(records, build, own_id)


def read_llava_bench(folder: Path, root: Path) -> list[Pair]:
    table = folder / "questions.jsonl"
    if not table.is_file():
        raise LvlmHeatError(f"{folder}: no LLaVA-Bench questions.jsonl")
    records = read_records(table, "jsonl")
    require_fields(table, records, ("image", "not the LLaVA-Bench layout?"), ("text", "not the LLaVA-Bench layout?"))

    def own_id(fields: dict[str, Any]) -> str:
        return f"llava_bench_{required_field(fields, 'question_id')}"

    def build(fields: dict[str, Any]) -> Pair:  # its reference answers are in another file, and free text
        return Pair(id=own_id(fields), image=root / "images" / required_field(fields, "image"),
                    question=required_field(fields, "text"))

    return pairs_from(records, build, own_id)
