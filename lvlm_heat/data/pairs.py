"""One image-question pair, and the question exactly as the model is asked it."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

Box = tuple[float, float, float, float]
"""``(left, top, right, bottom)`` in pixels of the original image."""


@dataclass(frozen=True)
class Pair:
    """One image-question pair to explain.

    ``image`` is a path, or the encoded image bytes for benchmarks that embed them.
    """

    id: str
    image: Path | bytes
    question: str
    answer: str | None = None
    bbox: Box | None = None
    options: tuple[str, ...] = ()


def prompt_with_options(question: str, options: tuple[str, ...]) -> str:
    """The multiple-choice prompt: the question, lettered options, and the instruction."""
    letters = string.ascii_uppercase
    lines = [question.strip(), *(f"{letters[k]}. {option}" for k, option in enumerate(options))]
    return "\n".join(lines) + "\nAnswer with the option's letter from the given choices directly."



def question_for(pair: Pair, multiple_choice: bool) -> str:
    """The question as sent to the model."""
    return prompt_with_options(pair.question, pair.options) if multiple_choice and pair.options else pair.question
