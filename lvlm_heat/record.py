"""The result of one pair: :class:`ExplanationRecord`, in memory and as ``result.json``.

A record is made once, by :func:`lvlm_heat.pipeline.explain_pair` (or for a pair that failed, by the
dataset run), and everything downstream takes it as it is: the pair's files, the console, the summary,
the dataset metrics, resume and the report. :meth:`ExplanationRecord.to_dict` is what ``result.json``
holds and :meth:`ExplanationRecord.from_dict` reads it back; the two round-trip exactly. The maps
themselves live in ``.npy`` files beside it (:func:`lvlm_heat.reporting.outputs.read_record` loads both).
Everything a reader needs without the maps (pointing hit, box mass) is a field, computed once.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lvlm_heat.data.pairs import Box
from lvlm_heat.metrics.curves import Curve

EXPLAINED, NOT_GROUNDED, FAILED = "explained", "not_grounded", "failed"
STATUSES = (EXPLAINED, NOT_GROUNDED, FAILED)


@dataclass
class TokenScore:
    """One answer token with its log-probabilities under the image and the baseline."""

    index: int
    text: str
    log_prob_image: float
    log_prob_baseline: float
    special: bool
    selected: bool = False
    log_prob_local: float | None = None
    """The lowest log-probability over the ``evidence`` rule's sweep of regions replaced by the baseline."""
    selected_by: list[str] = field(default_factory=list)
    """Which evidence selected the token: ``llr`` (whole image removed), ``local`` (one region removed),
    ``rule`` (the ``all`` or ``words`` rule)."""

    @property
    def llr(self) -> float:
        return self.log_prob_image - self.log_prob_baseline

    @property
    def local_drop(self) -> float | None:
        """``log p(a_t | I) - min_r log p(a_t | I with region r removed)``, or ``None`` without a sweep."""
        return None if self.log_prob_local is None else self.log_prob_image - self.log_prob_local

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "text": self.text, "llr": self.llr, "local_drop": self.local_drop,
                "log_prob_image": self.log_prob_image, "log_prob_baseline": self.log_prob_baseline,
                "log_prob_local": self.log_prob_local, "special": self.special, "selected": self.selected,
                "selected_by": list(self.selected_by)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], index: int = 0) -> TokenScore:
        """The inverse of :meth:`to_dict` (``index``: the token's position, where ``data`` does not say)."""
        return cls(data.get("index", index), data["text"], _float(data.get("log_prob_image")),
                   _float(data.get("log_prob_baseline")), bool(data.get("special")), bool(data.get("selected")),
                   data.get("log_prob_local"), list(data.get("selected_by") or []))


@dataclass
class WordMap:
    """The map of one word of the answer (per-word maps).

    Attributes:
        position: The word's position among the answer's words (0 = first).
        word: The word as it appears in the answer.
        tokens: Indices of its selected tokens.
        saliency: ``(H, W)`` float32 over the original image, as :attr:`ExplanationRecord.saliency` (``None`` in
            a record read without its maps).
        grid: The same map on the mask's cells, ``(h, w)``: what ``saliency_<k>_<word>.npy`` holds.
        deletion, insertion: Curves of its mask, scored on its own tokens.
        p_image, p_baseline: Mean probability of its tokens on I and on B.
        unstable: ``p_image - p_baseline`` is below ``min_gap``: its normalised curves are unstable (a word the
            image hardly changes, such as one copied from the question).
        pointing_hit, box_mass: Plausibility against the pair's box (``None`` without one).
    """

    position: int
    word: str
    tokens: list[int]
    saliency: np.ndarray | None
    deletion: Curve
    insertion: Curve
    p_image: float
    p_baseline: float
    unstable: bool = False
    pointing_hit: bool | None = None
    box_mass: float | None = None
    grid: np.ndarray | None = field(default=None, repr=False)

    @property
    def file_stem(self) -> str:
        """``<position>_<word>``, file-name safe: the stem of its ``saliency_*.npy`` and ``overlay_*.png``."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.word)[:40]
        return f"{self.position}_{safe}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.position, "word": self.word, "tokens": list(self.tokens),
                "saliency": f"saliency_{self.file_stem}.npy", "overlay": f"overlay_{self.file_stem}.png",
                "deletion_auc": self.deletion.auc, "insertion_auc": self.insertion.auc, "p_image": self.p_image,
                "p_baseline": self.p_baseline, "unstable_normalization": self.unstable,
                "pointing_hit": self.pointing_hit, "box_mass": self.box_mass,
                "curves": {"deletion": self.deletion.to_dict(), "insertion": self.insertion.to_dict()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordMap:
        curves = data["curves"]
        return cls(data["index"], data["word"], list(data["tokens"]), None, Curve.from_dict(curves["deletion"]),
                   Curve.from_dict(curves["insertion"]), _float(data.get("p_image")), _float(data.get("p_baseline")),
                   bool(data.get("unstable_normalization")), data.get("pointing_hit"), data.get("box_mass"))


@dataclass
class MethodMap:
    """One explainer's map of the pair (``--method``); the first explainer's is also the record's own map.

    Attributes:
        method: ``igos``, ``superpixel``, ``grid`` or ``gradient``.
        folder: Where its files are, relative to the pair's folder: ``""`` for the first explainer, else its name.
        saliency: ``(H, W)`` float32 over the original image, higher = more important (``None`` in a record read
            without its maps).
        grid: The same map on the explainer's own cells: what its ``saliency.npy`` holds.
        deletion, insertion: Curves of its map, on the explained tokens (cells of the mask's grid ranked by the
            map's mean over each, for every explainer alike).
        out_of_range: A normalised curve leaves ``[0, 1]`` by more than ``curve_margin``.
        pointing_hit, box_mass: Plausibility against the pair's box (``None`` without one).
        passes: Composites the map cost: not the answer, the selection or the curves, which every explainer
            shares (``None`` when unknown).
        seconds: Wall time of the map, with the same exclusions (``None`` when unknown).
        words: Per-word maps (``--maps per_word``), ``None`` otherwise.
    """

    method: str
    folder: str
    saliency: np.ndarray | None
    deletion: Curve
    insertion: Curve
    out_of_range: bool = False
    pointing_hit: bool | None = None
    box_mass: float | None = None
    passes: int | None = None
    seconds: float | None = None
    words: list[WordMap] | None = None
    grid: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        prefix = f"{self.folder}/" if self.folder else ""
        return {"method": self.method, "folder": self.folder, "saliency": f"{prefix}saliency.npy",
                "overlay": f"{prefix}overlay.png", "deletion_auc": self.deletion.auc,
                "insertion_auc": self.insertion.auc, "curve_out_of_range": self.out_of_range,
                "pointing_hit": self.pointing_hit, "box_mass": self.box_mass, "passes": self.passes,
                "seconds": self.seconds, "curves": {"deletion": self.deletion.to_dict(),
                                                    "insertion": self.insertion.to_dict()},
                "words": None if self.words is None else [w.to_dict() for w in self.words]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodMap:
        curves = data["curves"]
        return cls(data["method"], data.get("folder") or "", None, Curve.from_dict(curves["deletion"]),
                   Curve.from_dict(curves["insertion"]), bool(data.get("curve_out_of_range")), data.get("pointing_hit"),
                   data.get("box_mass"), data.get("passes"), data.get("seconds"),
                   None if data.get("words") is None else [WordMap.from_dict(w) for w in data["words"]])


@dataclass
class ImageMap:
    """One image of a question about several images, or one frame of a clip: its part of the map.

    Attributes:
        index: The image's place in the question (0 = first), or the frame's in the sampled clip.
        path: Its file (``None`` for an in-memory image or a frame).
        size: ``(H, W)`` of the image.
        share: Its share of the map's mass, over every image's cells (each image has the same cells): where the
            answer came from.
        saliency: ``(H, W)`` float32 over the image, on the scale every image of the pair shares (``None`` in a
            record read without its maps).
        grid: The same map on the mask's cells: what ``saliency_image<k>.npy`` holds.
        image: The image (``PIL.Image``), kept in memory for display; not in ``result.json``.
    """

    index: int
    path: str | None
    size: tuple[int, int]
    share: float
    saliency: np.ndarray | None = None
    grid: np.ndarray | None = field(default=None, repr=False)
    image: Any = field(default=None, repr=False, compare=False)

    @property
    def file_stem(self) -> str:
        """``image<k>`` (``k`` from 1): the stem of its ``saliency_*.npy`` and ``overlay_*.png``."""
        return f"image{self.index + 1}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "image": self.path, "image_size": list(self.size), "share": self.share,
                "saliency": f"saliency_{self.file_stem}.npy", "overlay": f"overlay_{self.file_stem}.png"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageMap:
        return cls(int(data["index"]), data.get("image"), tuple(data["image_size"]), _float(data.get("share")))


@dataclass
class ExplanationRecord:
    """The result for one pair.

    Attributes:
        pair_id: The pair's id, as the user or the dataset gave it.
        question: The question as the model was asked it.
        answer: The explained answer (the model's own unless one was given).
        status: ``explained``, ``not_grounded`` (no answer token depends on the image: a result, no map) or
            ``failed`` (``reason`` says why).
        tokens: Every answer token with its log-probabilities, LLR and selection.
        saliency: ``(H, W)`` float32 over the original image, higher = more important (``1 - M`` of the mask's
            cells, upsampled bilinearly); ``None`` when there is no map, or in a record read without its maps.
        saliency_grid: The same map on the mask's ``(h, w)`` cells: what ``saliency.npy`` holds (small whatever the
            image's size; :func:`~lvlm_heat.reporting.outputs.read_record` upsamples it back exactly).
        image_size: ``(H, W)`` of the explained image.
        deletion, insertion: The curves of the map (``None`` when not explained).
        p_image, p_baseline: Mean probability of the selected tokens on I and on B.
        unstable: ``p_image - p_baseline`` is below ``min_gap``: the normalisation is unstable.
        out_of_range: A normalised curve leaves ``[0, 1]`` by more than ``curve_margin``.
        pointing_hit, box_mass: The map's peak in ``bbox``, and its share of the map (``None`` without a box or
            a map).
        seconds: Wall time of the whole pair.
        timings: Wall seconds of each phase: ``answer``, ``prepare`` (processor, baseline, selection and
            warm-start passes), ``optimise`` (all iterations), ``curves``.
        history: Per iteration of the mask optimisation, every loss term (as logged to TensorBoard; empty when
            ``igos`` is not among the methods).
        model: The model's name.
        settings: The explanation settings (``ExplainConfig`` as a dict).
        image_path: The image file, when there is one.
        bbox: The evidence box, if the dataset gives one.
        folder: The pair's output folder name (file-name safe, unique in its run).
        reference: The dataset's reference answer, if it has one.
        answer_match: How the answer matches ``reference`` (:func:`lvlm_heat.data.answers.answer_matches`).
        image_notes: What was done to the image file to show it as viewers do (EXIF rotation, 16-bit scaling,
            transparency).
        words: Per-word maps (``--maps per_word``), ``None`` otherwise.
        methods: Every explainer's map, in the order ``--method`` gives them (one, ``igos``, by default). The first
            one's map, curves, plausibility and words are the record's own fields above.
        reliance: How much the answer depends on the image at all: the log-probability of the whole answer given
            the image (``log_p_image``), the baseline (``log_p_baseline``) and no image (``log_p_no_image``,
            ``None`` where the model cannot answer without one).
        reason: Why the pair failed (``failed`` only).
        warnings: What the user should know about the explained answer (words the tokenizer could not encode).
        given_answer: The answer the user asked to explain (``None``: the model's own).
        image_digest: SHA-256 of the image as given (:func:`~lvlm_heat.data.images.image_digest`).
        image: The explained image (``PIL.Image``, RGB), kept in memory for display; not in ``result.json``.
        images: With several images or a clip's frames, every image's part of the map, its share of the mass
            and its image (the record's own ``saliency`` is then the first image's); empty for one image.
        video: The images are the frames of a clip (``image_path`` is the clip's).
    """

    pair_id: str
    question: str
    answer: str = ""
    status: str = NOT_GROUNDED
    tokens: list[TokenScore] = field(default_factory=list)
    saliency: np.ndarray | None = None
    saliency_grid: np.ndarray | None = field(default=None, repr=False)
    image_size: tuple[int, int] | None = None
    deletion: Curve | None = None
    insertion: Curve | None = None
    p_image: float = math.nan
    p_baseline: float = math.nan
    unstable: bool = False
    out_of_range: bool = False
    pointing_hit: bool | None = None
    box_mass: float | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    image_path: str | None = None
    bbox: Box | None = None
    folder: str = ""
    reference: str | None = None
    answer_match: str | None = None
    image_notes: list[str] = field(default_factory=list)
    words: list[WordMap] | None = None
    methods: list[MethodMap] = field(default_factory=list)
    reliance: dict[str, float | None] = field(default_factory=dict)
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    given_answer: str | None = None
    image_digest: str = ""
    image: Any = field(default=None, repr=False, compare=False)
    images: list[ImageMap] = field(default_factory=list)
    video: bool = False

    def _repr_html_(self) -> str:
        """Jupyter's display: the overlay, the answer coloured by LLR, the AUCs."""
        from lvlm_heat.reporting.notebook import explanation_html

        return explanation_html(self)

    def figure(self):
        """A ``matplotlib.figure.Figure`` of the overlay (and per-word maps); it is not shown."""
        from lvlm_heat.reporting.notebook import explanation_figure

        return explanation_figure(self)

    @property
    def correct(self) -> bool | None:
        """Whether the answer matches the reference (``None`` without a reference, or for a failed pair)."""
        if self.reference is None or self.status == FAILED:
            return None
        return self.answer_match is not None

    @property
    def no_image_ratio(self) -> float | None:
        """``p(A | no image) / p(A | I)`` of the whole answer (``None`` when unknown)."""
        with_image, without = self.reliance.get("log_p_image"), self.reliance.get("log_p_no_image")
        if with_image is None or without is None:
            return None
        return math.exp(min(without - with_image, 50.0))

    @property
    def answered_without_image(self) -> bool | None:
        """Whether the model gives the answer at least half as likely without the image as with it,
        ``p(A | no image) >= 0.5 p(A | I)``: the language prior alone carries it (``None`` when unknown)."""
        ratio = self.no_image_ratio
        return None if ratio is None else ratio >= 0.5

    @property
    def deletion_auc(self) -> float:
        return self.deletion.auc if self.deletion else math.nan

    @property
    def insertion_auc(self) -> float:
        return self.insertion.auc if self.insertion else math.nan

    @property
    def selected_tokens(self) -> list[str]:
        return [t.text.strip() for t in self.tokens if t.selected]

    def method_map(self, method: str) -> MethodMap | None:
        """The map of explainer ``method`` (``None`` when it did not run on this pair)."""
        return next((m for m in self.methods if m.method == method), None)

    def for_method(self, method: str) -> ExplanationRecord:
        """A shallow copy of the record whose own map, curves, plausibility and words are ``method``'s: what the
        figures and the report draw for each explainer."""
        chosen = self.method_map(method)
        if chosen is None:
            raise KeyError(f"no map of method {method!r} in pair {self.pair_id!r}")
        view = copy.copy(self)
        view.adopt(chosen)
        view.methods = [chosen]
        return view

    def adopt(self, chosen: MethodMap) -> None:
        """Make ``chosen``'s map, curves, plausibility and words the record's own fields."""
        self.saliency, self.saliency_grid = chosen.saliency, chosen.grid
        self.deletion, self.insertion, self.out_of_range = chosen.deletion, chosen.insertion, chosen.out_of_range
        self.pointing_hit, self.box_mass, self.words = chosen.pointing_hit, chosen.box_mass, chosen.words

    def to_dict(self) -> dict[str, Any]:
        """The ``result.json`` record: every field but the maps and the image, and the derived values a reader
        of the file wants (LLRs, AUCs, correctness, reliance ratio)."""
        reliance = None
        if self.reliance:
            reliance = {**self.reliance, "no_image_ratio": self.no_image_ratio,
                        "answered_without_image": self.answered_without_image}
        return {
            "id": self.pair_id,
            "folder": self.folder,
            "status": self.status,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "image": self.image_path,
            "image_size": list(self.image_size) if self.image_size else None,
            "image_notes": list(self.image_notes),
            "image_digest": self.image_digest,
            "question": self.question,
            "given_answer": self.given_answer,
            "answer": self.answer,
            "reference": self.reference,
            "answer_match": self.answer_match,
            "correct": self.correct,
            "tokens": [t.to_dict() for t in self.tokens],
            "selected_tokens": self.selected_tokens,
            "deletion_auc": _finite(self.deletion_auc),
            "insertion_auc": _finite(self.insertion_auc),
            "p_image": self.p_image,
            "p_baseline": self.p_baseline,
            "unstable_normalization": self.unstable,
            "curve_out_of_range": self.out_of_range,
            "bbox": list(self.bbox) if self.bbox else None,
            "pointing_hit": self.pointing_hit,
            "box_mass": self.box_mass,
            "curves": {"deletion": _curve(self.deletion), "insertion": _curve(self.insertion)},
            "reliance": reliance,
            "words": None if self.words is None else [w.to_dict() for w in self.words],
            "methods": [m.to_dict() for m in self.methods],
            **({"images": [i.to_dict() for i in self.images], "video": self.video} if self.images else {}),
            "history": [dict(h) for h in self.history],
            "seconds": self.seconds,
            "timings": dict(self.timings),
            "model": self.model,
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExplanationRecord:
        """The record of a ``result.json`` (or a summary row of a pair without one): the inverse of
        :meth:`to_dict`, without the maps. Missing keys take their defaults."""
        curves = data.get("curves") or {}
        words = None if data.get("words") is None else [WordMap.from_dict(w) for w in data["words"]]
        methods = [MethodMap.from_dict(m) for m in data.get("methods") or []]
        reliance = {k: v for k, v in (data.get("reliance") or {}).items()
                    if k not in ("no_image_ratio", "answered_without_image")}
        status = data.get("status")
        record = cls(
            pair_id=str(data.get("id", data.get("folder", ""))),
            question=data.get("question") or "",
            answer=data.get("answer") or "",
            status=status if status in STATUSES else FAILED,
            tokens=[TokenScore.from_dict(t, k) for k, t in enumerate(data.get("tokens") or [])],
            deletion=None if curves.get("deletion") is None else Curve.from_dict(curves["deletion"]),
            insertion=None if curves.get("insertion") is None else Curve.from_dict(curves["insertion"]),
            p_image=_float(data.get("p_image")),
            p_baseline=_float(data.get("p_baseline")),
            unstable=bool(data.get("unstable_normalization")),
            out_of_range=bool(data.get("curve_out_of_range")),
            pointing_hit=data.get("pointing_hit"),
            box_mass=data.get("box_mass"),
            seconds=_float(data.get("seconds"), 0.0),
            timings=dict(data.get("timings") or {}),
            history=[dict(h) for h in data.get("history") or []],
            model=data.get("model") or "",
            settings=data.get("settings") or {},
            image_path=data.get("image"),
            image_size=tuple(data["image_size"]) if data.get("image_size") else None,
            bbox=tuple(data["bbox"]) if data.get("bbox") else None,
            folder=data.get("folder") or "",
            reference=data.get("reference"),
            answer_match=data.get("answer_match"),
            image_notes=list(data.get("image_notes") or []),
            words=words,
            methods=methods,
            reliance=reliance,
            reason=data.get("reason"),
            warnings=list(data.get("warnings") or []),
            given_answer=data.get("given_answer"),
            image_digest=data.get("image_digest") or "",
            images=[ImageMap.from_dict(i) for i in data.get("images") or []],
            video=bool(data.get("video")),
        )
        if record.methods:  # the first explainer's map is the record's own: the same objects, read once
            first = record.methods[0]
            first.deletion, first.insertion = record.deletion or first.deletion, record.insertion or first.insertion
            first.words = record.words
        elif record.status == EXPLAINED and record.deletion is not None:  # a result.json from before --method
            record.methods = [MethodMap(record.settings.get("method", "igos"), "", None, record.deletion,
                                        record.insertion, record.out_of_range, record.pointing_hit, record.box_mass,
                                        words=record.words)]
        return record


def failed_record(pair_id: str, folder: str, question: str, reason: str, reference: str | None = None,
                  seconds: float = 0.0) -> ExplanationRecord:
    """The record of a pair that could not be explained, with the reason in one line."""
    return ExplanationRecord(pair_id, question, status=FAILED, folder=folder, reference=reference, reason=reason,
                             seconds=seconds)


def differences(record: ExplanationRecord, question: str, given_answer: str | None, image_digest: str) -> list[str]:
    """What differs between a finished record and the pair it would stand for: ``image``, ``question``, ``answer``
    (empty: the record is this pair's result and may be reused).

    Example:
        >>> old = ExplanationRecord("p", "What color?", "red", image_digest="ab")
        >>> differences(old, "What color?", None, "ab"), differences(old, "What shape?", "round", "cd")
        ([], ['image', 'question', 'answer'])
    """
    changed = [name for name, same in (("image", record.image_digest == image_digest),
                                       ("question", record.question == question),
                                       ("answer", record.given_answer == given_answer)) if not same]
    return changed


def _curve(curve: Curve | None) -> dict[str, list[float]] | None:
    return None if curve is None else curve.to_dict()


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _float(value: Any, default: float = math.nan) -> float:
    return default if value is None else float(value)
