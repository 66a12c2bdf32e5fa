"""The result record of one pair: :class:`Explanation`, and its JSON form.

An explanation is computed once and flows, as this object, to the outputs on disk, the
dataset metrics and the summary. :meth:`Explanation.to_dict` is what ``result.json``
holds; a finished pair's ``result.json`` is read back only when a run resumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lvlm_heat.data.pairs import Box
from lvlm_heat.metrics.curves import Curve
from lvlm_heat.metrics.functional import box_mass, pointing_hit

EXPLAINED, NOT_GROUNDED, FAILED = "explained", "not_grounded", "failed"


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


@dataclass
class WordMap:
    """The map of one word of the answer (per-word maps).

    Attributes:
        position: The word's position among the answer's words (0 = first).
        word: The word as it appears in the answer.
        tokens: Indices of its selected tokens.
        saliency: ``(H, W)`` float32 over the original image, as :attr:`Explanation.saliency`.
        deletion, insertion: Curves of its mask, scored on its own tokens.
        p_image, p_baseline: Mean probability of its tokens on I and on B.
        unstable: ``p_image - p_baseline`` is below ``min_gap``: its normalised curves are unstable
            (a word the image hardly changes, such as one copied from the question).
    """

    position: int
    word: str
    tokens: list[int]
    saliency: np.ndarray
    deletion: Curve
    insertion: Curve
    p_image: float
    p_baseline: float
    unstable: bool = False

    @property
    def file_stem(self) -> str:
        """``<position>_<word>``, file-name safe: the stem of its ``saliency_*.npy`` and ``overlay_*.png``."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.word)[:40]
        return f"{self.position}_{safe}"


@dataclass
class Explanation:
    """The result for one pair.

    Attributes:
        saliency: ``(H, W)`` float32 over the original image, higher = more important
            (``1 - M`` upsampled); ``None`` when no token was selected.
        tokens: Every answer token with its log-probabilities, LLR and selection.
        deletion, insertion: The curves of the final mask (``None`` when not explained).
        p_image, p_baseline: Mean probability of the selected tokens on I and on B.
        unstable: ``p_image - p_baseline`` is below ``min_gap``: the normalisation is unstable.
        out_of_range: A normalised curve leaves ``[0, 1]`` by more than ``curve_margin``.
        history: Per iteration, every loss term (as logged to TensorBoard).
        timings: Wall seconds of each phase: ``answer``, ``prepare`` (processor, baseline and
            LLR passes), ``optimise`` (all iterations), ``curves``.
        folder: The pair's output folder name (file-name safe, unique in its run).
        reference: The dataset's reference answer, if it has one.
        answer_match: How the model's answer matches ``reference``: ``exact``, ``option``,
            ``normalised``, or ``None`` (no match, or no reference).
        image_notes: What was done to the image file to show it as viewers do (EXIF rotation,
            16-bit scaling, transparency), empty when nothing.
        words: Per-word maps (``--maps per_word``), ``None`` otherwise.
        reliance: How much the answer depends on the image at all: the log-probability of the whole
            answer given the image (``log_p_image``), the baseline (``log_p_baseline``) and no image
            (``log_p_no_image``, ``None`` where the model cannot answer without one).
    """

    pair_id: str
    question: str
    answer: str
    status: str
    tokens: list[TokenScore]
    saliency: np.ndarray | None = None
    deletion: Curve | None = None
    insertion: Curve | None = None
    p_image: float = math.nan
    p_baseline: float = math.nan
    unstable: bool = False
    out_of_range: bool = False
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
    reliance: dict[str, float | None] = field(default_factory=dict)
    image: Any = field(default=None, repr=False, compare=False)
    """The explained image (``PIL.Image``, RGB), kept in memory for display; not saved in ``result.json``."""

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
        """Whether the answer matches the reference (``None`` without a reference)."""
        return None if self.reference is None else self.answer_match is not None

    @property
    def answered_without_image(self) -> bool | None:
        """Whether the model gives the answer at least half as likely without the image as with it,
        ``p(A | no image) >= 0.5 p(A | I)``: the language prior alone carries it (``None`` when unknown)."""
        ratio = self.no_image_ratio
        return None if ratio is None else ratio >= 0.5

    @property
    def no_image_ratio(self) -> float | None:
        """``p(A | no image) / p(A | I)`` of the whole answer (``None`` when unknown)."""
        with_image, without = self.reliance.get("log_p_image"), self.reliance.get("log_p_no_image")
        if with_image is None or without is None:
            return None
        return math.exp(min(without - with_image, 50.0))

    @property
    def pointing_hit(self) -> bool | None:
        """Whether the saliency peak is in ``bbox`` (``None`` without a box or a map)."""
        if self.bbox is None or self.saliency is None:
            return None
        return pointing_hit(torch.from_numpy(self.saliency), self.bbox)

    @property
    def box_mass(self) -> float | None:
        """Share of the saliency inside ``bbox`` (``None`` without a box or a map)."""
        if self.bbox is None or self.saliency is None:
            return None
        return box_mass(torch.from_numpy(self.saliency), self.bbox)

    @property
    def deletion_auc(self) -> float:
        return self.deletion.auc if self.deletion else math.nan

    @property
    def insertion_auc(self) -> float:
        return self.insertion.auc if self.insertion else math.nan

    @property
    def selected_tokens(self) -> list[str]:
        return [t.text.strip() for t in self.tokens if t.selected]

    def to_dict(self) -> dict[str, Any]:
        """The ``result.json`` record."""

        def curve(c: Curve | None) -> dict[str, list[float]] | None:
            if c is None:
                return None
            return {"fractions": c.fractions.tolist(), "probs": c.probs.tolist(), "normalized": c.normalized.tolist()}

        return {
            "id": self.pair_id,
            "folder": self.folder,
            "status": self.status,
            "image": self.image_path,
            "image_notes": self.image_notes,
            "question": self.question,
            "answer": self.answer,
            "reference": self.reference,
            "answer_match": self.answer_match,
            "tokens": [
                {"index": t.index, "text": t.text, "llr": t.llr, "local_drop": t.local_drop,
                 "log_prob_image": t.log_prob_image, "log_prob_baseline": t.log_prob_baseline,
                 "log_prob_local": t.log_prob_local, "special": t.special, "selected": t.selected,
                 "selected_by": t.selected_by}
                for t in self.tokens
            ],
            "selected_tokens": self.selected_tokens,
            "deletion_auc": None if math.isnan(self.deletion_auc) else self.deletion_auc,
            "insertion_auc": None if math.isnan(self.insertion_auc) else self.insertion_auc,
            "p_image": self.p_image,
            "p_baseline": self.p_baseline,
            "unstable_normalization": self.unstable,
            "curve_out_of_range": self.out_of_range,
            "bbox": list(self.bbox) if self.bbox else None,
            "pointing_hit": self.pointing_hit,
            "box_mass": self.box_mass,
            "curves": {"deletion": curve(self.deletion), "insertion": curve(self.insertion)},
            "correct": self.correct,
            "reliance": {**self.reliance, "no_image_ratio": self.no_image_ratio,
                         "answered_without_image": self.answered_without_image} if self.reliance else None,
            "words": None if self.words is None else [
                {"index": w.position, "word": w.word, "tokens": w.tokens,
                 "saliency": f"saliency_{w.file_stem}.npy", "overlay": f"overlay_{w.file_stem}.png",
                 "deletion_auc": w.deletion.auc, "insertion_auc": w.insertion.auc,
                 "p_image": w.p_image, "p_baseline": w.p_baseline, "unstable_normalization": w.unstable,
                 "pointing_hit": None if self.bbox is None else pointing_hit(torch.from_numpy(w.saliency), self.bbox),
                 "box_mass": None if self.bbox is None else box_mass(torch.from_numpy(w.saliency), self.bbox),
                 "curves": {"deletion": curve(w.deletion), "insertion": curve(w.insertion)}}
                for w in self.words
            ],
            "history": self.history,
            "seconds": self.seconds,
            "timings": self.timings,
            "model": self.model,
            "settings": self.settings,
        }
