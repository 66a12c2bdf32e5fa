"""One image-question pair: as a dataset lists it (:class:`Pair`), and opened, ready to explain (:class:`Query`)."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvlm_heat.data.ids import safe_name
from lvlm_heat.data.images import image_digest, open_image
from lvlm_heat.errors import LvlmHeatError

Box = tuple[float, float, float, float]
"""``(left, top, right, bottom)`` in pixels of the image as displayed (EXIF orientation applied)."""


@dataclass(frozen=True)
class Pair:
    """One image-question pair to explain.

    Attributes:
        id: The dataset's own id for the pair, exactly as written (default: the image file's stem; for a
            record that could not be read and has no id, where it is, e.g. ``line_3``). Shown to the
            user and in the summary; never used as a path, and not necessarily unique.
        image: A path, or the encoded image bytes for benchmarks that embed them; ``None`` only for a
            pair with an ``error`` whose image is unknown.
        question: The question as the dataset gives it (see :func:`question_for` for the prompt).
        answer: The answer to explain, or ``None`` to explain the model's own answer (the default).
            A dataset's answer column goes here only with ``DataConfig.explain_reference``.
        bbox: The evidence box, in pixels of the displayed image, if the dataset gives one.
        options: The answer options of a multiple-choice question.
        reference: The dataset's reference (ground-truth) answer, always recorded when it has one; the
            model's answer is compared with it by :func:`lvlm_heat.data.answers.answer_matches`.
        error: Why the record could not be made into a usable pair (one line naming its line or record
            number), or ``None``. A pair with an error is recorded as failed, with this reason.
        folder: The name of the pair's output folder, ``<output_dir>/<folder>``: the one field to build
            paths from. It is always a single file-name-safe component (:func:`~lvlm_heat.data.ids.safe_name`;
            default: that of ``id``), and :func:`~lvlm_heat.data.read_dataset` makes it unique in the dataset.
    """

    id: str
    image: Path | bytes | None
    question: str
    answer: str | None = None
    bbox: Box | None = None
    options: tuple[str, ...] = ()
    reference: str | None = None
    error: str | None = None
    folder: str = ""

    def __post_init__(self) -> None:
        if not self.folder:
            object.__setattr__(self, "folder", safe_name(self.id))  # frozen: set once, while being built
        elif safe_name(self.folder) != self.folder:
            raise ValueError(f"a pair's folder must be a safe file name, got {self.folder!r}")


def prompt_with_options(question: str, options: tuple[str, ...]) -> str:
    """The multiple-choice prompt: the question, lettered options, and the instruction."""
    letters = string.ascii_uppercase
    lines = [question.strip(), *(f"{letters[k]}. {option}" for k, option in enumerate(options))]
    return "\n".join(lines) + "\nAnswer with the option's letter from the given choices directly."


def question_for(pair: Pair, multiple_choice: bool) -> str:
    """The question as sent to the model."""
    return prompt_with_options(pair.question, pair.options) if multiple_choice and pair.options else pair.question


@dataclass
class Query:
    """One pair, opened: what the method explains.

    Attributes:
        image: The image, any size (``PIL.Image``; made RGB when explained).
        question: The question exactly as the model is asked it (:func:`question_for`).
        answer: The answer to explain, or ``None`` for the model's own (greedy) answer.
        pair_id: The pair's name, as the user or the dataset gave it.
        folder: Its output folder name (default: the file-name-safe form of ``pair_id``).
        bbox: The evidence box, for the plausibility scores.
        reference: A reference answer, compared with the explained answer.
        options: The question's answer options, for comparing an option letter with ``reference``.
        image_path: The image file, recorded in the result (``None`` for an in-memory or embedded image).
        image_notes: What opening the image file changed (recorded).
        image_digest: :func:`~lvlm_heat.data.images.image_digest` of the image as given (its file's bytes), recorded:
            a finished result is reused only for the same picture. Default: the digest of ``image``'s pixels.
    """

    image: Any
    question: str
    answer: str | None = None
    pair_id: str = "pair"
    folder: str = ""
    bbox: Box | None = None
    reference: str | None = None
    options: tuple[str, ...] = ()
    image_path: str | None = None
    image_notes: list[str] = field(default_factory=list)
    image_digest: str = ""

    def __post_init__(self) -> None:
        self.folder = self.folder or safe_name(self.pair_id)
        self.image_digest = self.image_digest or image_digest(self.image)


def open_pair(pair: Pair, multiple_choice: bool = False) -> Query:
    """Open ``pair``'s image (:func:`~lvlm_heat.data.images.open_image`) and ask its question as the model is
    asked it.

    Raises:
        LvlmHeatError: The pair's record was unusable (``pair.error``), or its image cannot be read.
    """
    if pair.error:
        raise LvlmHeatError(pair.error)
    image, notes = open_image(pair.image)
    return Query(image, question_for(pair, multiple_choice), pair.answer, pair.id, pair.folder, pair.bbox,
                 pair.reference, pair.options, None if isinstance(pair.image, bytes) else str(pair.image), notes,
                 image_digest(pair.image))
