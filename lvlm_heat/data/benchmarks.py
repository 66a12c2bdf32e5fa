"""The paper's benchmarks, in the layouts their authors publish (download them yourself; nothing is fetched).

- ``cvbench``: CV-Bench's ``test_2d.jsonl`` / ``test_3d.jsonl`` / ``test.jsonl`` (``idx``, ``type``,
  ``image``, ``question``, ``choices``, ``answer`` like ``"(C)"``), images relative to the folder;
- ``mmvp``: MMVP's ``Questions.csv`` (``Index`` or ``lndex``, ``Question``, ``Options`` like
  ``"(a) Open (b) Closed"``, ``Correct Answer``) with images in ``MMVP Images/<index>.jpg``;
- ``mmstar``: the MMStar TSV (``index``, ``question``, ``answer``, ``category``, ``image`` as base64);
- ``llava_bench``: LLaVA-Bench in-the-wild's ``questions.jsonl`` (``question_id``, ``image``,
  ``text``) with images in ``images/``.

Multiple-choice benchmarks carry their options; with ``multiple_choice`` the prompt lists
them and asks for the letter (METHOD.md section 2 says how a one-token answer is kept).
"""

from __future__ import annotations

import base64
import csv
import re
from pathlib import Path

from lvlm_heat.data.pairs import Pair
from lvlm_heat.data.tables import parse_bbox, parse_options, read_records
from lvlm_heat.errors import LvlmHeatError


def read_cvbench(folder: Path, root: Path) -> list[Pair]:
    files = [folder / name for name in ("test_2d.jsonl", "test_3d.jsonl") if (folder / name).is_file()]
    files = files or ([folder / "test.jsonl"] if (folder / "test.jsonl").is_file() else [])
    if not files:
        raise LvlmHeatError(f"{folder}: no CV-Bench test_2d.jsonl, test_3d.jsonl or test.jsonl")
    pairs = []
    for file in files:
        for record in read_records(file, "jsonl"):
            pairs.append(Pair(
                id=f"{record.get('type', 'cv')}_{record['idx']}".lower(),
                image=root / record["image"],
                question=record["question"],
                bbox=parse_bbox(record.get("bbox")) if record.get("bbox") and len(record["bbox"]) == 4 else None,
                options=parse_options(record.get("choices")),
            ))
    return pairs


def read_mmvp(folder: Path, root: Path) -> list[Pair]:
    table = folder / "Questions.csv"
    if not table.is_file():
        raise LvlmHeatError(f"{folder}: no MMVP Questions.csv")
    pairs = []
    for record in read_records(table, "csv"):
        index = (record.get("Index") or record.get("lndex") or "").strip()
        options = tuple(o.strip() for o in re.split(r"\([a-z]\)", record["Options"]) if o.strip())
        pairs.append(Pair(id=f"mmvp_{index}", image=root / "MMVP Images" / f"{index}.jpg",
                          question=record["Question"].strip(), options=options))
    return pairs


def read_mmstar(path: Path) -> list[Pair]:
    csv.field_size_limit(2**31 - 1)
    pairs = []
    for record in read_records(path, "csv"):
        pairs.append(Pair(id=f"mmstar_{record['index']}", image=base64.b64decode(record["image"]),
                          question=record["question"].strip()))
    return pairs


def read_llava_bench(folder: Path, root: Path) -> list[Pair]:
    table = folder / "questions.jsonl"
    if not table.is_file():
        raise LvlmHeatError(f"{folder}: no LLaVA-Bench questions.jsonl")
    return [Pair(id=f"llava_bench_{r['question_id']}", image=root / "images" / r["image"], question=r["text"])
            for r in read_records(table, "jsonl")]
