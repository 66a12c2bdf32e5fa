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
        extra_images: The pair's further images, after ``image``, for a question about several images (paths or
            bytes, as ``image``).
        video: A clip (:func:`~lvlm_heat.data.video.read_video`: a video file, an animated image or a folder of
            frames) asked about instead of ``image``, which is then ``None``.
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
    extra_images: tuple[Path | bytes, ...] = ()
    video: Path | None = None

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
            a finished result is reused only for the same picture. Default: the digest of ``image``'s pixels (of
            every image's, with several).
        extra_images: The further images of a question about several images (``PIL.Image``), or the clip's frames
            after the first (``video``): each gets a mask of its own.
        extra_paths: Their files (``None`` for an in-memory or embedded image, or a frame).
        video: The images are the frames of one clip, in time order (``image_path`` is the clip's).
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
    extra_images: list[Any] = field(default_factory=list)
    extra_paths: list[str | None] = field(default_factory=list)
    video: bool = False

    def __post_init__(self) -> None:
        self.folder = self.folder or safe_name(self.pair_id)
        self.image_digest = self.image_digest or _digest([self.image, *self.extra_images])
        if len(self.extra_paths) < len(self.extra_images):
            self.extra_paths = [*self.extra_paths, *[None] * (len(self.extra_images) - len(self.extra_paths))]

    @property
    def images(self) -> list[Any]:
        """Every image of the pair, in order: ``image`` first (the frames of a clip, with ``video``)."""
        return [self.image, *self.extra_images]


def _digest(sources: list[Any]) -> str:
    """The digest of one image, or of several: their digests, in order."""
    digests = [image_digest(source) for source in sources]
    return digests[0] if len(digests) == 1 else image_digest(" ".join(digests).encode())


def pair_digest(pair: Pair) -> str:
    """:func:`~lvlm_heat.data.images.image_digest` of what the pair shows, as :class:`Query` records it: its image's
    file, every image's in order, or the clip's (a folder of frames: every frame file's).

    Raises:
        LvlmHeatError: A file that cannot be read.
    """
    from lvlm_heat.data.video import FRAME_SUFFIXES

    if pair.video is None:
        return _digest([pair.image, *pair.extra_images])
    clip = Path(pair.video)
    if clip.is_dir():
        return _digest(sorted(p for p in clip.iterdir() if p.suffix.lower() in FRAME_SUFFIXES) or [clip])
    return image_digest(clip)


def open_pair(pair: Pair, multiple_choice: bool = False, frames: int = 8) -> Query:
    """Open ``pair``'s image (:func:`~lvlm_heat.data.images.open_image`), images or clip (``frames`` sampled
    uniformly, :func:`~lvlm_heat.data.video.read_video`) and ask its question as the model is asked it.

    Raises:
        LvlmHeatError: The pair's record was unusable (``pair.error``), or its image or clip cannot be read.
    """
    from lvlm_heat.data.video import read_video

    if pair.error:
        raise LvlmHeatError(pair.error)
    question = question_for(pair, multiple_choice)
    if pair.video is not None:
        shown, notes = read_video(pair.video, frames)
        return Query(shown[0], question, pair.answer, pair.id, pair.folder, pair.bbox, pair.reference, pair.options,
                     str(pair.video), notes, pair_digest(pair), extra_images=shown[1:], video=True)
    opened = [open_image(source) for source in (pair.image, *pair.extra_images)]
    notes = [note if not pair.extra_images else f"image {k + 1}: {note}"
             for k, (_, own) in enumerate(opened) for note in own]

    def path(source: Path | bytes | None) -> str | None:
        return None if isinstance(source, bytes) or source is None else str(source)

    return Query(opened[0][0], question, pair.answer, pair.id, pair.folder, pair.bbox, pair.reference, pair.options,
                 path(pair.image), notes, pair_digest(pair),
                 extra_images=[image for image, _ in opened[1:]], extra_paths=[path(s) for s in pair.extra_images])
