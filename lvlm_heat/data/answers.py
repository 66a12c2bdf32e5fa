"""How the model's answer matches a dataset's reference answer: exactly, up to form, as the same option, or by
containing it."""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Literal

Match = Literal["exact", "option", "normalised", "contains"]

_ARTICLES = frozenset({"a", "an", "the"})
_LETTER = re.compile(r"\(?\s*([A-Za-z])\s*\)?\s*[.:)]?")
"""A bare option letter: ``C``, ``(C)``, ``c.``, ``C)``, ``C:``."""
_LEADING_LETTER = re.compile(r"\(?([A-Za-z])(?:\)|[.:])\s+\S")
"""An option letter followed by text, as models often answer: ``(C) blue``, ``C. blue``, ``C: blue``."""


def normalise_answer(text: str) -> str:
    """``text`` without case, punctuation, the articles a / an / the, or repeated whitespace.

    >>> normalise_answer("  The Red-umbrella! ")
    'red umbrella'
    """
    kept = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text.casefold())
    return " ".join(word for word in kept.split() if word not in _ARTICLES)


def _letter(text: str, options: tuple[str, ...], leading: bool = False) -> int | None:
    """The option index ``text`` names by letter (also ``C. text`` when ``leading``), or ``None``."""
    found = _LETTER.fullmatch(text.strip()) or (_LEADING_LETTER.match(text.strip()) if leading else None)
    if found is None:
        return None
    index = string.ascii_lowercase.index(found.group(1).lower())
    return index if not options or index < len(options) else None


def _same_text(first: str, second: str) -> bool:
    normalised = normalise_answer(second)
    return bool(normalised) and normalise_answer(first) == normalised


def _contains(answer: str, reference: str) -> bool:
    """Whether the reference's words appear together, in order, among the answer's (both normalised)."""
    words, wanted = normalise_answer(answer).split(), normalise_answer(reference).split()
    return bool(wanted) and any(words[k : k + len(wanted)] == wanted for k in range(len(words) - len(wanted) + 1))


def _same_option(answer: str, reference: str, options: tuple[str, ...]) -> bool:
    answer_letter = _letter(answer, options, leading=True)
    reference_letter = _letter(reference, options)
    if reference_letter is not None:  # "(C)": the answer says C, or the text of option C
        return answer_letter == reference_letter or (
            reference_letter < len(options) and _same_text(answer, options[reference_letter]))
    # the reference is an option's text: the answer gives that option's letter
    return answer_letter is not None and answer_letter < len(options) and _same_text(options[answer_letter], reference)


def answer_matches(answer: str, reference: str, options: tuple[str, ...] = ()) -> Match | None:
    """How the model's ``answer`` matches the dataset's ``reference``, the first that holds of:

    - ``"exact"``: the same text (surrounding whitespace aside);
    - ``"option"``: the same option of a multiple-choice question: the reference is a letter (``(C)``,
      ``C``, ``c.``; within ``options`` when they are given) and the answer is that letter (also as
      ``C. text``) or that option's text; or the reference is an option's text and the answer its letter;
    - ``"normalised"``: the same text once case, punctuation, whitespace and the articles a / an / the
      are ignored (:func:`normalise_answer`);
    - ``"contains"``: the reference's words appear together and in this order in the answer, normalised alike
      (``green`` in ``the square is green``; not a bare option letter, which ``option`` judges);

    else ``None`` (also for an empty reference).

    Args:
        answer: The model's answer.
        reference: The dataset's reference answer.
        options: The question's answer options, in letter order (A, B, ...), if multiple choice.

    >>> answer_matches("a red umbrella", "a red umbrella")
    'exact'
    >>> answer_matches("The red umbrella.", "red  umbrella")
    'normalised'
    >>> answer_matches("C", "(C)"), answer_matches("(b) blue", "b.")
    ('option', 'option')
    >>> answer_matches("Blue", "(B)", options=("red", "blue")), answer_matches("B", "blue", options=("red", "blue"))
    ('option', 'option')
    >>> answer_matches("red", "(B)", options=("red", "blue")) is None
    True
    >>> answer_matches("the square is green", "green"), answer_matches("a red circle, left", "Red circle.")
    ('contains', 'contains')
    >>> answer_matches("green and red", "red green") is None, answer_matches("the reddish one", "red") is None
    (True, True)
    """
    if not reference.strip():
        return None
    if answer.strip() == reference.strip():
        return "exact"
    if _same_option(answer, reference, options):
        return "option"
    if _same_text(answer, reference):
        return "normalised"
    if _letter(reference, options) is None and _contains(answer, reference):
        return "contains"
    return None
