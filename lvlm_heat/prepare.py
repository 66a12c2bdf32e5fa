"""The first step of the method: from an image and a question to the answer tokens that are explained.

:func:`prepare` does, in order:

1. the baseline ``B`` of the image (a strong blur by default: "the image removed");
2. the answer: the model's greedy answer, or the user's, as token ids;
3. the processor, once on ``I`` and once on ``B`` (:meth:`Adapter.prepare <lvlm_heat.adapters.Adapter.prepare>`),
   and the :class:`~lvlm_heat.scorer.CompositeScorer` that scores their composites;
4. the reliance pass: every answer token's log-probability under teacher forcing given ``I`` and given
   ``B`` (their difference is the token's log-likelihood ratio, LLR), and the whole answer's without any image;
5. for the ``evidence`` rule, a sweep of regions each replaced by ``B``, and each token's largest drop;
6. the selection (:mod:`lvlm_heat.selection`), and with per-word maps, the words that get a mask of their own.

What it returns, :class:`Prepared`, holds everything the later steps read; nothing in it changes afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from PIL import Image
from torch import Tensor

from lvlm_heat.adapters.base import Adapter, PreparedPair
from lvlm_heat.baseline import make_baseline
from lvlm_heat.batch_size import resolve_batch_size
from lvlm_heat.clock import Clock
from lvlm_heat.config import ExplainConfig
from lvlm_heat.data.pairs import Query
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.record import TokenScore
from lvlm_heat.scorer import CompositeScorer
from lvlm_heat.selection import Word, select_tokens, selected_words

EVIDENCE_SIDE = 0.5
"""Side of the ``evidence`` rule's regions, as a fraction of the image's side: any object up to a quarter of the
image lies whole in one of its overlapping regions."""


@dataclass
class Prepared:
    """One pair, ready for the mask: its answer, the tokens explained, and the scorer of its composites.

    Plain data: the later steps read its fields and never call back into this module.

    Attributes:
        query: The pair as asked (the image made RGB).
        baseline: The baseline image ``B``.
        answer: The explained answer's text (special tokens left out).
        tokens: Every answer token with its log-probabilities and whether it is explained.
        selected: ``(T,)`` bool, the explained tokens (none: the pair is not visually grounded, and gets no map).
        reliance: The whole answer's log-probability given the image, the baseline and no image.
        inputs: The processor's outputs for ``I`` and ``B`` (``None`` for an empty answer).
        scorer: Scores the composites of ``inputs`` (``None`` for an empty answer).
        log_probs: ``(2, T)`` every answer token's log-probability given ``I`` and given ``B``.
        groups: ``(G, T)`` bool, the tokens each mask is scored on: the joint selection first, then each word with
            a mask of its own (a word holding every selected token shares the joint mask).
        probabilities: Per group, the mean probability of its tokens given ``I`` and given ``B`` (the curves'
            normalisation).
        words: With per-word maps, every word holding selected tokens, in answer order; empty otherwise.
        word_groups: The group (row of ``groups``) whose mask is each word's map: 0 for a word sharing the joint mask.
        warnings: What the user should know about the answer (words the tokenizer could not encode).
        clock: The pair's phases so far.
    """

    query: Query
    baseline: Image.Image
    answer: str
    tokens: list[TokenScore] = field(default_factory=list)
    selected: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))
    reliance: dict[str, float | None] = field(default_factory=dict)
    inputs: PreparedPair | None = None
    scorer: CompositeScorer | None = None
    log_probs: Tensor | None = None
    groups: Tensor | None = None
    probabilities: list[tuple[float, float]] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    word_groups: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)


def prepare(adapter: Adapter, query: Query, config: ExplainConfig) -> Prepared:
    """Answer, baseline, processor, reliance pass and selection for ``query`` (see the module docstring).

    Raises:
        LvlmHeatError: An empty question or answer, or an answer longer than the model's context.
    """
    if not query.question or not query.question.strip():
        raise LvlmHeatError("the question is empty: give a question about the image")
    if query.answer is not None and not query.answer.strip():
        raise LvlmHeatError("the answer is empty: give the answer to explain, or none to explain the model's own")
    clock = Clock()
    image = query.image if query.image.mode == "RGB" else query.image.convert("RGB")
    query.image = image
    query.extra_images = [extra if extra.mode == "RGB" else extra.convert("RGB") for extra in query.extra_images]
    baseline = make_baseline(image, config.baseline, seed=config.optim.seed)
    several = bool(query.extra_images)
    if several and config.maps == "per_word":
        raise LvlmHeatError("--maps per_word explains one image at a time: use the joint map for several images or "
                            "a clip")
    if several and config.methods != ["igos"]:
        others = ", ".join(name for name in config.methods if name != "igos")
        raise LvlmHeatError(f"--method {others} explains one image at a time: use igos for several images or a clip")
    if query.answer is not None:
        answer_ids = adapter.encode_answer(query.answer)
    else:
        answer_ids = adapter.generate(query.images if several else image, query.question, config.max_new_tokens)
    clock.lap("answer")
    texts, special = adapter.token_texts(answer_ids)
    spoken = [t for t, s in zip(texts, special) if not s]  # an unknown word may come back as a special token
    answer = "".join(spoken).strip()
    warnings = _dropped_words(query.answer, spoken) if query.answer is not None else []
    if several and config.refine.stage != "none":
        warnings.append("the fine stage (--refine.stage superpixel) refines one image at a time: this map of several "
                        "images is the optimised mask without it")
    prepared = Prepared(query, baseline, answer, [], warnings=warnings, clock=clock)
    if answer_ids.numel() == 0:
        return prepared

    if several:
        baselines = [baseline, *(make_baseline(extra, config.baseline, seed=config.optim.seed)
                                 for extra in query.extra_images)]
        inputs = adapter.prepare_images(query.images, baselines, query.question, answer_ids)
    else:
        inputs = adapter.prepare(image, baseline, query.question, answer_ids)
    scorer = CompositeScorer(adapter, inputs, config.optim.mask_size, resolve_batch_size(adapter, inputs, config))
    with torch.no_grad():
        both = {k: torch.stack([inputs.image[k], inputs.baseline[k]]) for k in inputs.image}
        log_probs = scorer.log_probs(both).float().cpu()
    content = ~torch.tensor(special)
    no_image = adapter.text_only_log_probs(query.question, answer_ids)
    prepared.reliance = {
        "log_p_image": float(log_probs[0, content].sum()),
        "log_p_baseline": float(log_probs[1, content].sum()),
        "log_p_no_image": None if no_image is None else float(no_image[content].sum()),
    }
    local = None
    if config.select.rule == "evidence" and config.select.windows:
        local = scorer.sweep(config.select.windows, EVIDENCE_SIDE).log_probs.min(0).values
    prepared.tokens = select_tokens(
        [TokenScore(k, texts[k], float(log_probs[0, k]), float(log_probs[1, k]), special[k],
                    log_prob_local=None if local is None else float(local[k])) for k in range(len(texts))],
        config.select,
    )
    prepared.inputs, prepared.scorer, prepared.log_probs = inputs, scorer, log_probs
    selected = prepared.selected = torch.tensor([t.selected for t in prepared.tokens], dtype=torch.bool)
    if config.maps == "per_word" and selected.any():
        prepared.words = selected_words(prepared.tokens)
    joint = set(selected.nonzero().flatten().tolist())
    rows = []
    for word in prepared.words:  # a word holding every selected token has the joint mask, the others their own
        own = set(word.tokens) != joint
        prepared.word_groups.append(len(rows) + 1 if own else 0)
        if own:
            rows.append(torch.zeros(len(selected), dtype=torch.bool).index_fill_(0, torch.tensor(word.tokens), True))
    prepared.groups = torch.stack([selected, *rows])
    prepared.probabilities = [(float(log_probs[0, row].exp().mean()), float(log_probs[1, row].exp().mean()))
                              for row in prepared.groups]
    clock.lap("prepare")
    return prepared


def _dropped_words(answer: str, texts: list[str]) -> list[str]:
    """A warning naming the words of ``answer`` that its tokens (``texts``) no longer spell: what the
    tokenizer could not encode (an emoji, a word outside a small vocabulary) is silently left out of it.

    Example:
        >>> _dropped_words("it is chartreuse", [" it", " is"])
        ["the tokenizer cannot encode 'chartreuse': explained as 'it is'"]
        >>> _dropped_words("it is red", [" it", " is", " red"])
        []
    """
    encoded = "".join(texts)
    kept = {w.lower() for w in re.findall(r"\w+", encoded)}
    missing = [w for w in re.findall(r"\S+", answer) if any(p.lower() not in kept for p in re.findall(r"\w+", w))
               or not re.search(r"\w", w) and w not in encoded]
    if not missing:
        return []
    return [f"the tokenizer cannot encode {' '.join(missing)!r}: explained as {encoded.strip()!r}"]
