"""Which answer tokens to explain (docs/method.md, 'Token selection').

The paper's rule (``llr``) keeps the tokens the image makes much more likely than the baseline
does: ``LLR_t = log p(a_t | I) - log p(a_t | B) > alpha``, among content tokens (no special
tokens, no whitespace or punctuation, no stop words). Its blind spot (docs/method.md): when the model's
prior, or a colour blob the blur keeps, already favours the answer, the LLR is small although the
word depends on one region. The default rule (``evidence``) also keeps a content token whose
log-probability drops by more than ``alpha`` when a single region is replaced by the baseline, over
a fixed sweep of overlapping regions (9 forward passes by default). A one-token answer (a
multiple-choice letter) is kept when its probability halves, ``p(a | B) <= 0.5 p(a | I)``. The
user can instead explain all tokens, or the tokens of given words ("red").
"""

from __future__ import annotations

import math
import re
import string
from typing import NamedTuple

from lvlm_heat.config import SelectionConfig
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.record import TokenScore

STOP_WORDS = frozenset(
    "a an the of is are was were be been being and or but to in on at by for with from as it its this that "
    "these those there here what which who whom whose how do does did has have had i you he she we they "
    "them his her their our your my me us not no so than then too very can will would should could may "
    "might must shall into onto over under up down out off again further once just".split()
)

def is_content(text: str) -> bool:
    """Not whitespace, not punctuation only, not a stop word."""
    word = text.strip().lower()
    return bool(word) and not all(c in string.punctuation for c in word) and word not in STOP_WORDS


def _word_spans(texts: list[str], words: list[str]) -> set[int]:
    """Indices of the tokens that overlap any occurrence of ``words`` in the answer."""
    answer = "".join(texts)
    starts = [0]
    for text in texts:
        starts.append(starts[-1] + len(text))
    chosen: set[int] = set()
    for word in words:
        matches = list(re.finditer(rf"(?<!\w){re.escape(word.strip())}(?!\w)", answer, flags=re.IGNORECASE))
        if not matches:
            raise LvlmHeatError(f"word {word!r} is not in the answer {answer.strip()!r}: pick words of the answer")
        for match in matches:
            chosen.update(k for k in range(len(texts)) if starts[k] < match.end() and starts[k + 1] > match.start())
    return chosen


class Word(NamedTuple):
    """A word of the answer that holds selected tokens."""

    position: int
    """The word's position among the answer's words (0 = first)."""
    text: str
    """The word as the answer spells it (words sharing one token are joined by a space)."""
    tokens: list[int]
    """The indices of its selected tokens."""


def selected_words(tokens: list[TokenScore]) -> list[Word]:
    """The words of the answer that hold selected tokens, each with the selected tokens it is made of.

    A word is a run of letters, digits, apostrophes and hyphens in the answer text; its tokens are the
    selected tokens that overlap it (a sub-word split counts once per word). Words whose selected
    tokens are the same (one token spanning two words) are merged.

    Example:
        >>> toks = [TokenScore(i, t, 0.0, 0.0, False, selected=s)
        ...         for i, (t, s) in enumerate([(" the", False), (" umb", True), ("rella", True), (" is", False),
        ...                                     (" red", True), (".", False)])]
        >>> [(w.position, w.text, w.tokens) for w in selected_words(toks)]
        [(1, 'umbrella', [1, 2]), (3, 'red', [4])]
    """
    texts = [t.text for t in tokens]
    starts = [0]
    for text in texts:
        starts.append(starts[-1] + len(text))
    words: dict[tuple[int, ...], tuple[int, str]] = {}
    for k, match in enumerate(re.finditer(r"\w(?:[\w'-]*\w)?", "".join(texts))):
        overlap = tuple(t.index for t, first, end in zip(tokens, starts, starts[1:])
                        if t.selected and first < match.end() and end > match.start())
        if overlap:
            position, name = words.get(overlap, (k, ""))
            words[overlap] = (position, f"{name} {match.group()}".strip())
    return sorted(Word(position, name, list(indices)) for indices, (position, name) in words.items())


def select_tokens(tokens: list[TokenScore], config: SelectionConfig) -> list[TokenScore]:
    """Mark ``tokens[k].selected`` (and ``selected_by``) by ``config``'s rule and return ``tokens``."""
    candidates = [t for t in tokens if not t.special]
    evidence: dict[int, list[str]] = {}
    if config.rule in ("all", "words"):
        if config.rule == "all":
            chosen = {t.index for t in candidates}
        elif not config.words:
            raise LvlmHeatError("the 'words' rule needs --select.words, e.g. --select.words '[red]'")
        else:
            chosen = _word_spans([t.text for t in tokens], config.words) - {t.index for t in tokens if t.special}
        evidence = {index: ["rule"] for index in chosen}
    elif config.rule in ("evidence", "llr"):
        one_token = len(candidates) == 1 and candidates[0].text.strip()
        for token in candidates:
            if not (one_token or is_content(token.text)):
                continue
            threshold = math.log(2.0) if one_token else config.alpha  # one token: p(a | B) <= 0.5 p(a | I)
            drops = {"llr": token.llr}
            if config.rule == "evidence" and token.local_drop is not None:
                drops["local"] = token.local_drop
            found = [name for name, drop in drops.items() if (drop >= threshold if one_token else drop > threshold)]
            if found:
                evidence[token.index] = found
    else:
        raise LvlmHeatError(f"unknown selection rule {config.rule!r}: use evidence, llr, all or words")
    for token in tokens:
        token.selected = token.index in evidence
        token.selected_by = evidence.get(token.index, [])
    return tokens
