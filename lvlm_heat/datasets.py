"""Datasets of image-question pairs: generic tables and the paper's benchmarks, from local files.

Generic: JSONL, a JSON list or CSV, with configurable field names (image path, question,
optional answer, id, bounding box, options). Benchmarks, in the layouts their authors
publish (download them yourself; nothing is fetched):

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
import io
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError

from lvlm_heat.errors import LvlmHeatError

Format = Literal["auto", "jsonl", "json", "csv", "cvbench", "mmvp", "mmstar", "llava_bench"]


@dataclass(frozen=True)
class Pair:
    """One image-question pair to explain.

    ``image`` is a path, or the encoded image bytes for benchmarks that embed them.
    """

    id: str
    image: Path | bytes
    question: str
    answer: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    options: tuple[str, ...] = ()


@dataclass
class DataConfig:
    """Where the pairs come from."""

    path: Path | None = None
    """Dataset file (or benchmark folder); default: the shipped demo pairs."""
    image_root: Path | None = None
    """Folder image paths are relative to; default: the dataset file's folder."""
    format: Format = "auto"
    """``auto`` (by extension, or the benchmark a folder holds), jsonl, json, csv, cvbench, mmvp, mmstar,
    llava_bench."""
    image_field: str = "image"
    question_field: str = "question"
    answer_field: str = "answer"
    """Optional: explain this answer instead of the model's."""
    id_field: str = "id"
    """Optional: the pair's id (default: the image file's stem, made unique)."""
    bbox_field: str = "bbox"
    """Optional: ``[left, top, right, bottom]`` in pixels of the evidence, for plausibility metrics."""
    options_field: str = "options"
    """Optional: a list of answer options (multiple choice)."""
    multiple_choice: bool = False
    """List the options in the prompt and ask for the letter of the answer."""
    limit: int | None = None
    """Explain only the first ``limit`` pairs."""


def load_image(source: Path | str | bytes) -> Image.Image:
    """Open an image (path or encoded bytes) as RGB, with a one-line error for a missing or bad one."""
    if isinstance(source, bytes):
        handle = io.BytesIO(source)
        name = "embedded image"
    else:
        path = Path(source)
        if not path.is_file():
            raise LvlmHeatError(f"image not found: {path}")
        handle, name = path, str(path)
    try:
        with Image.open(handle) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise LvlmHeatError(f"cannot read image {name}: not an image file PIL can open ({err})") from err


def prompt_with_options(question: str, options: tuple[str, ...]) -> str:
    """The multiple-choice prompt: the question, lettered options, and the instruction."""
    letters = string.ascii_uppercase
    lines = [question.strip(), *(f"{letters[k]}. {option}" for k, option in enumerate(options))]
    return "\n".join(lines) + "\nAnswer with the option's letter from the given choices directly."


def _bbox(value) -> tuple[float, float, float, float] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if len(value) != 4:
        raise ValueError(f"a bounding box has 4 numbers, got {value!r}")
    return tuple(float(v) for v in value)


def _options(value) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else [v.strip() for v in value.split("|")]
    return tuple(str(v) for v in value)


def _records(path: Path, kind: str) -> list[dict]:
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


def _table(path: Path, kind: str, config: DataConfig, root: Path) -> list[Pair]:
    pairs = []
    for number, record in enumerate(_records(path, kind), start=1):
        try:
            image = root / str(record[config.image_field])
            pairs.append(
                Pair(
                    id=str(record.get(config.id_field) or image.stem),
                    image=image,
                    question=str(record[config.question_field]),
                    answer=record.get(config.answer_field) or None,
                    bbox=_bbox(record.get(config.bbox_field)),
                    options=_options(record.get(config.options_field)),
                )
            )
        except (KeyError, TypeError, ValueError) as err:
            raise LvlmHeatError(
                f"{path}, record {number}: expected fields {config.image_field!r} and {config.question_field!r} "
                f"({type(err).__name__}: {err}); set --data.image_field / --data.question_field"
            ) from err
    return pairs


def _letter(answer: str) -> str:
    match = re.search(r"[A-Za-z]", answer or "")
    return match.group(0).upper() if match else ""


def _cvbench(folder: Path, root: Path) -> list[Pair]:
    files = [folder / name for name in ("test_2d.jsonl", "test_3d.jsonl") if (folder / name).is_file()]
    files = files or ([folder / "test.jsonl"] if (folder / "test.jsonl").is_file() else [])
    if not files:
        raise LvlmHeatError(f"{folder}: no CV-Bench test_2d.jsonl, test_3d.jsonl or test.jsonl")
    pairs = []
    for file in files:
        for record in _records(file, "jsonl"):
            pairs.append(Pair(
                id=f"{record.get('type', 'cv')}_{record['idx']}".lower(),
                image=root / record["image"],
                question=record["question"],
                bbox=_bbox(record.get("bbox")) if record.get("bbox") and len(record["bbox"]) == 4 else None,
                options=_options(record.get("choices")),
            ))
    return pairs


def _mmvp(folder: Path, root: Path) -> list[Pair]:
    table = folder / "Questions.csv"
    if not table.is_file():
        raise LvlmHeatError(f"{folder}: no MMVP Questions.csv")
    pairs = []
    for record in _records(table, "csv"):
        index = (record.get("Index") or record.get("lndex") or "").strip()
        options = tuple(o.strip() for o in re.split(r"\([a-z]\)", record["Options"]) if o.strip())
        pairs.append(Pair(id=f"mmvp_{index}", image=root / "MMVP Images" / f"{index}.jpg",
                          question=record["Question"].strip(), options=options))
    return pairs


def _mmstar(path: Path) -> list[Pair]:
    csv.field_size_limit(2**31 - 1)
    pairs = []
    for record in _records(path, "csv"):
        pairs.append(Pair(id=f"mmstar_{record['index']}", image=base64.b64decode(record["image"]),
                          question=record["question"].strip()))
    return pairs


def _llava_bench(folder: Path, root: Path) -> list[Pair]:
    table = folder / "questions.jsonl"
    if not table.is_file():
        raise LvlmHeatError(f"{folder}: no LLaVA-Bench questions.jsonl")
    return [Pair(id=f"llava_bench_{r['question_id']}", image=root / "images" / r["image"], question=r["text"])
            for r in _records(table, "jsonl")]


def _detect(path: Path) -> str:
    if path.is_dir():
        for name, marker in (("cvbench", "test_2d.jsonl"), ("cvbench", "test.jsonl"), ("mmvp", "Questions.csv"),
                             ("llava_bench", "questions.jsonl")):
            if (path / marker).is_file():
                return name
        raise LvlmHeatError(f"{path}: a folder, but not a CV-Bench, MMVP or LLaVA-Bench layout; give a file or --data.format")
    suffix = path.suffix.lower()
    return {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "mmstar"}.get(suffix) or "jsonl"


def _unique_ids(pairs: list[Pair]) -> list[Pair]:
    seen: dict[str, int] = {}
    out = []
    for pair in pairs:
        count = seen.get(pair.id, 0)
        seen[pair.id] = count + 1
        out.append(pair if count == 0 else Pair(f"{pair.id}_{count}", *list(vars(pair).values())[1:]))
    return out


def read_dataset(config: DataConfig) -> list[Pair]:
    """The pairs ``config`` describes, with unique ids, in file order."""
    from lvlm_heat.data import DEMO_PAIRS

    path = Path(config.path) if config.path is not None else DEMO_PAIRS
    if not path.exists():
        raise LvlmHeatError(f"dataset not found: {path}")
    kind = _detect(path) if config.format == "auto" else config.format
    folder = path if path.is_dir() else path.parent
    root = Path(config.image_root) if config.image_root is not None else folder
    try:
        if kind in ("jsonl", "json", "csv"):
            pairs = _table(path, kind, config, root)
        elif kind == "cvbench":
            pairs = _cvbench(folder, root)
        elif kind == "mmvp":
            pairs = _mmvp(folder, root)
        elif kind == "mmstar":
            pairs = _mmstar(path)
        else:
            pairs = _llava_bench(folder, root)
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError, KeyError) as err:
        raise LvlmHeatError(f"cannot read {path} as {kind}: {type(err).__name__}: {err}") from err
    pairs = _unique_ids(pairs)
    return pairs[: config.limit] if config.limit is not None else pairs


def question_for(pair: Pair, multiple_choice: bool) -> str:
    """The question as sent to the model."""
    return prompt_with_options(pair.question, pair.options) if multiple_choice and pair.options else pair.question
