"""Generic tables of pairs: JSONL, a JSON list or CSV/TSV, with configurable field names."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from lvlm_heat.config import DataConfig
from lvlm_heat.data.pairs import Box, Pair
from lvlm_heat.errors import LvlmHeatError


def parse_bbox(value) -> Box | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if len(value) != 4:
        raise ValueError(f"a bounding box has 4 numbers, got {value!r}")
    return tuple(float(v) for v in value)


def parse_options(value) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else [v.strip() for v in value.split("|")]
    return tuple(str(v) for v in value)


def read_records(path: Path, kind: str) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if kind == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if kind == "json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError("a JSON dataset is a list of objects")
        return data
    delimiter = "\t" if path.suffix == ".tsv" else ","
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def read_table(path: Path, kind: str, config: DataConfig, root: Path) -> list[Pair]:
    pairs = []
    for number, record in enumerate(read_records(path, kind), start=1):
        try:
            image = root / str(record[config.image_field])
            pairs.append(
                Pair(
                    id=str(record.get(config.id_field) or image.stem),
                    image=image,
                    question=str(record[config.question_field]),
                    answer=record.get(config.answer_field) or None,
                    bbox=parse_bbox(record.get(config.bbox_field)),
                    options=parse_options(record.get(config.options_field)),
                )
            )
        except (KeyError, TypeError, ValueError) as err:
            raise LvlmHeatError(
                f"{path}, record {number}: expected fields {config.image_field!r} and {config.question_field!r} "
                f"({type(err).__name__}: {err}); set --data.image_field / --data.question_field"
            ) from err
    return pairs
