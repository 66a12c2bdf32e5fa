"""Which answer tokens to explain (METHOD.md section 2).

The default rule keeps the tokens the image makes much more likely than the baseline
does: ``LLR_t = log p(a_t | I) - log p(a_t | B) > alpha``, among content tokens (no
special tokens, no whitespace or punctuation, no stop words). A one-token answer
(a multiple-choice letter) is kept when ``p(a | B) <= 0.5 p(a | I)``. The user can
instead explain all tokens, or the tokens of given words ("red").
"""

from __future__ import annotations

import math
import re
import string

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


def select_tokens(tokens: list[TokenScore], config: SelectionConfig) -> list[TokenScore]:
    """Mark ``tokens[k].selected`` by ``config``'s rule and return ``tokens``."""
    candidates = [t for t in tokens if not t.special]
    if config.rule == "all":
        chosen = {t.index for t in candidates}
    elif config.rule == "words":
        if not config.words:
            raise LvlmHeatError("the 'words' rule needs --select.words, e.g. --select.words '[red]'")
        chosen = _word_spans([t.text for t in tokens], config.words) - {t.index for t in tokens if t.special}
    elif config.rule == "llr":
        if len(candidates) == 1 and candidates[0].text.strip():
            chosen = {t.index for t in candidates if t.llr >= math.log(2.0)}
        else:
            chosen = {t.index for t in candidates if is_content(t.text) and t.llr > config.alpha}
    else:
        raise LvlmHeatError(f"unknown selection rule {config.rule!r}: use llr, all or words")
    for token in tokens:
        token.selected = token.index in chosen
    return tokens
