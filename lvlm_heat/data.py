"""Image-question pairs: one from the command line, or a JSONL file of them.

A JSONL line is ``{"image": path, "question": str}`` with optional ``"id"``,
``"answer"`` and ``"bbox"`` (``[left, top, right, bottom]`` in pixels); image paths
are relative to the file's folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from lvlm_heat.errors import LvlmHeatError

DEMO_DIR = Path(__file__).parent / "demo"
DEMO_MODEL = DEMO_DIR / "llava_demo"
DEMO_MODELS = {"demo": DEMO_MODEL, "demo-qwen2-vl": DEMO_DIR / "qwen2_vl_demo"}
DEMO_PAIRS = DEMO_DIR / "pairs" / "pairs.jsonl"


@dataclass(frozen=True)
class Pair:
    """One image-question pair to explain."""

    id: str
    image: Path
    question: str
    answer: str | None = None
    bbox: tuple[float, float, float, float] | None = None


def load_image(path: Path | str) -> Image.Image:
    """Open an image as RGB, with a one-line error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise LvlmHeatError(f"image not found: {path}")
    try:
        with Image.open(path) as handle:
            return handle.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise LvlmHeatError(f"cannot read image {path}: not an image file PIL can open ({err})") from err


def read_pairs(path: Path | str) -> list[Pair]:
    """Pairs of a JSONL file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise LvlmHeatError(f"pairs file not found: {path}")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            image = path.parent / record["image"]
            question = record["question"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise LvlmHeatError(f"{path}:{number}: expected a JSON object with 'image' and 'question' ({err})") from err
        bbox = record.get("bbox")
        pairs.append(
            Pair(str(record.get("id", image.stem)), image, question, record.get("answer"), tuple(bbox) if bbox else None)
        )
    return pairs
